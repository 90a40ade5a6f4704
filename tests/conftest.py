import os
import tempfile

import pytest

# Keep Ray's CPU threads and logs quiet and the tests' Ray on this machine's cores.
os.environ.setdefault("RAY_TRAIN_ENABLE_PRINT_PATCH", "0")
# Subjects read by the medgen tests are cached here, not in the user's ~/.cache (data.medgen.cached)
os.environ.setdefault("LOSSTUNE_CACHE", tempfile.mkdtemp(prefix="losstune_test_cache_"))
# Where inject_faults puts a test's faults (trainables/engine/faults.py); named before any Ray starts, so
# every worker, in this process's Ray or a subprocess's, looks there.
FAULTS_FILE = os.path.join(tempfile.mkdtemp(prefix="losstune_test_faults_"), "faults.json")
os.environ["LOSSTUNE_FAULTS"] = FAULTS_FILE


@pytest.fixture(scope="session")
def local_ray():
    """One local Ray for all integration tests (starting one costs seconds)."""
    import ray

    from losstune.ray_jobs.cluster import start_local_ray

    start_local_ray()
    yield ray
    ray.shutdown()


@pytest.fixture
def inject_faults():
    """`inject_faults(crash_at_epoch=2, when={"optim.lr": 0.5})`: the runs this test starts get these
    faults (trainables/engine/faults.py) until it ends."""
    import json

    def write(**faults):
        with open(FAULTS_FILE, "w") as f:
            json.dump(faults, f)

    yield write
    if os.path.exists(FAULTS_FILE):
        os.remove(FAULTS_FILE)
