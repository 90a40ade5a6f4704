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

    from losstune.ray_jobs.core.cluster import start_local_ray

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


@pytest.fixture(scope="session")
def finished_sweep(local_ray, tmp_path_factory):
    """One small finished sweep, built once per test session on the shared Ray, that the tests
    which read a real sweep's folder share (never write into it: copy it first): hdr_patch over
    `caps`, 3 smoke trials in two slots without a scheduler, the documented default first, a
    hand-picked point second (--enqueue), an earlier sweep's 8 trials as the study's prior trials
    (--warm-start). Returns (its folder, what it printed, the earlier sweep's folder, the Train
    controllers it started: counted around the sweep itself, since the Ray is shared)."""
    import contextlib
    import io
    import json

    from ray.util.state import list_actors

    from losstune.ray_jobs import sweep

    from tests.ray_jobs.sweep_folder import write_sweep

    root = tmp_path_factory.mktemp("finished_sweep")
    earlier = root / "earlier" / "caps-earlier"
    write_sweep(earlier, trials=8)
    picks = root / "picks.json"
    picks.write_text(json.dumps([{"caps/mode": "B", "caps/log_delta_scale": 0.5}]))
    address = local_ray.get_runtime_context().gcs_address

    def controllers() -> set:  # every one this Ray has had, dead ones too
        return {a.actor_id for a in list_actors(address=address, filters=[("class_name", "=", "TrainController")],
                                                detail=False, limit=10000)}

    before = controllers()
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = sweep.main(["hdr_patch", "--confirm-top", "0", "--space", "caps", "--trials", "3", "--smoke-test",
                           "--scheduler", "none", "--enqueue", str(picks), "--warm-start", str(earlier),
                           "--set", "health.max_overflow_frac=1.0", "--storage", str(root), "--name", "caps3"])
    assert code == 0, printed.getvalue()
    return root / "caps3", printed.getvalue(), earlier, controllers() - before


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real S3-compatible server (moto_server) on a loopback port, with a bucket, for this session;
    the process's environment gets the key pair it accepts (as a user's would hold theirs)."""
    from tests.s3_server import CREDENTIALS, start_s3_server, stop_s3_server

    server = start_s3_server(tmp_path_factory.mktemp("s3") / "moto_server.log")
    saved = {name: os.environ.get(name) for name in CREDENTIALS}
    os.environ.update(CREDENTIALS)
    try:
        yield server
    finally:
        stop_s3_server(server)
        for name, value in saved.items():
            os.environ.pop(name) if value is None else os.environ.update({name: value})
