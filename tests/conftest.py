import os
import tempfile

import pytest

# Keep Ray's CPU threads and logs quiet and the tests' Ray on this machine's cores.
os.environ.setdefault("RAY_TRAIN_ENABLE_PRINT_PATCH", "0")
# Subjects read by the medgen tests are cached here, not in the user's ~/.cache (data.medgen.cached)
os.environ.setdefault("LOSSTUNE_CACHE", tempfile.mkdtemp(prefix="losstune_test_cache_"))


@pytest.fixture(scope="session")
def local_ray():
    """One local Ray for all integration tests (starting one costs seconds)."""
    import ray

    from losstune.ray_jobs.cluster import start_local_ray

    start_local_ray()
    yield ray
    ray.shutdown()
