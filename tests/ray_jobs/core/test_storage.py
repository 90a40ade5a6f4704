"""Where a sweep's files go: names joined into local paths and object-store URIs (their query kept
last), and the store itself read and written against a real S3-compatible server on loopback
(moto_server, tests/s3_server.py): no Ray."""

import pandas as pd
import pytest

from losstune.ray_jobs.core import storage
from losstune.ray_jobs.core.usage import UsageError
from losstune.ray_jobs.cli.flags import check_storage

QUERY = "endpoint_override=127.0.0.1:5077&scheme=http&region=us-east-1"


def test_names_go_into_the_path_and_the_query_stays_last():
    uri = f"s3://bucket/runs?{QUERY}"
    assert storage.join(uri, "sweep", "meta.json") == f"s3://bucket/runs/sweep/meta.json?{QUERY}"
    assert storage.join("s3://bucket/runs/", "sweep/") == "s3://bucket/runs/sweep"
    assert storage.join("/data/results", "sweep", "trials.parquet") == "/data/results/sweep/trials.parquet"
    # a local path is never split at "?": it is a file name character there
    assert storage.join("/data/odd?name", "x") == "/data/odd?name/x"
    assert storage.parent_and_name(f"s3://bucket/runs/sweep/?{QUERY}") == (f"s3://bucket/runs?{QUERY}", "sweep")
    assert storage.parent_and_name("/data/results/sweep") == ("/data/results", "sweep")
    # a checkpoint's path as Ray reports it (inside the store's filesystem) is a URI of the store again
    assert storage.uri_of("bucket/runs/s/checkpoint_000002", uri) == f"s3://bucket/runs/s/checkpoint_000002?{QUERY}"
    assert storage.uri_of("/data/results/s/checkpoint_000002", "/data/results") == "/data/results/s/checkpoint_000002"


def test_a_sweeps_files_round_trip_through_an_s3_compatible_store(s3_server):
    uri = s3_server.uri("unit")
    check_storage(uri)  # writes and removes a probe
    frame = pd.DataFrame({"trial_id": ["a", "b"], "objective": [1.0, 2.0]})
    storage.write_parquet(storage.join(uri, "sweep", "trials.parquet"), frame)
    storage.write_bytes(storage.join(uri, "sweep", "meta.json"), b'{"family": "hdr_patch"}')
    assert storage.exists(storage.join(uri, "sweep", "trials.parquet"))
    assert not storage.exists(storage.join(uri, "sweep", "missing.json"))
    pd.testing.assert_frame_equal(storage.read_parquet(storage.join(uri, "sweep", "trials.parquet")), frame)
    assert storage.read_json(storage.join(uri, "sweep", "meta.json")) == {"family": "hdr_patch"}


def test_a_store_that_does_not_answer_or_refuses_the_credentials_is_one_line_naming_storage(s3_server, monkeypatch):
    with pytest.raises(UsageError, match=r"^--storage: cannot write to s3://nobucket/x\?.*Bucket 'nobucket' not found"):
        check_storage(f"s3://nobucket/x?endpoint_override=127.0.0.1:{s3_server.port}&scheme=http&region=us-east-1")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("HOME", "/nonexistent")  # no ~/.aws/credentials either
    with pytest.raises(UsageError, match="--storage: cannot write to s3://losstune-runs/unit.*ACCESS_DENIED") as err:
        check_storage(s3_server.uri("unit"))
    assert "\n" not in str(err.value)


# pyarrow retries a store that does not answer for about 6 s: two commands stand for the rest
# (resume and compare ask the same check_storage_answers as the sweep; analyze reads as confirm)
@pytest.mark.parametrize("command", ["sweep", "confirm"])
def test_a_command_refuses_a_store_that_does_not_answer_in_one_line_before_ray(command, capsys, monkeypatch,
                                                                               s3_server):
    from losstune.ray_jobs import confirm
    from losstune.ray_jobs import sweep
    from tests.ray_nodes import free_ports

    monkeypatch.setattr("ray.init", lambda *a, **k: pytest.fail("Ray started"))
    (port,) = free_ports(1)  # nothing listens there
    store = f"s3://losstune-runs/x?endpoint_override=127.0.0.1:{port}&scheme=http&region=us-east-1"
    main, argv = {"sweep": (sweep.main, ["hdr_patch", "--storage", store]), "confirm": (confirm.main, [store])}[command]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Could not connect" in err and (command == "confirm" or "--storage: cannot read" in err)
