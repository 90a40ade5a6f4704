"""Ray's start failing (its raylet misses Ray's fixed 30 s wait on a loaded machine): tried again,
then one line and exit 4, no traceback. No Ray is started: the start is replaced by one that fails."""

import pytest

from losstune.ray_jobs.core import cluster
from losstune.ray_jobs import sweep


@pytest.fixture
def failing_start(monkeypatch):
    tries = []

    def fail(verbose=False):
        tries.append(verbose)
        raise Exception("The current node timed out during startup. This could happen because some of the "
                        "raylet failed to startup or the GCS has become overloaded.")

    monkeypatch.setattr(cluster, "start_local_ray", fail)
    monkeypatch.setattr("ray.is_initialized", lambda: False)
    monkeypatch.setattr("ray.shutdown", lambda: None)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    return tries


def test_a_start_that_fails_is_tried_again_then_said_in_one_line(failing_start, capsys, tmp_path):
    code = sweep.main(["hdr_patch", "--smoke-test", "--trials", "1", "--storage", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == cluster.EXIT_RAY_START == 4 and len(failing_start) == cluster.START_TRIES == 3
    assert err.startswith("sweep: error: Ray could not start after 3 tries (The current node timed out")
    assert len(err.splitlines()) == 1


def test_a_start_that_fails_once_goes_on(monkeypatch):
    tries = []

    def flaky(verbose=False):
        tries.append(verbose)
        if len(tries) == 1:
            raise Exception("The current node timed out during startup.")

    monkeypatch.setattr(cluster, "start_local_ray", flaky)
    monkeypatch.setattr("ray.is_initialized", lambda: False)
    monkeypatch.setattr("ray.shutdown", lambda: None)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    cluster.start_ray(False)
    assert len(tries) == 2


def test_compare_says_it_in_one_line_too(failing_start, capsys, tmp_path):
    from losstune.ray_jobs import compare

    code = compare.main(["hdr_patch", "default", "phase1", "--smoke-test", "--storage", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 4 and err.startswith("compare: error: Ray could not start after 3 tries") and len(err.splitlines()) == 1
