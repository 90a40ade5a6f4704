import json

from losstune.trainables.engine import timeline


def test_mark_opens_no_file_when_off(monkeypatch):
    def no_file(*args, **kwargs):
        raise AssertionError(f"mark opened {args[0]} with marks off")

    monkeypatch.delenv(timeline.ENV, raising=False)
    monkeypatch.setattr("builtins.open", no_file)
    timeline.mark("loop_entered", run="abc")


def test_mark_appends_one_json_line_per_event(monkeypatch, tmp_path):
    path = tmp_path / "timeline.jsonl"
    monkeypatch.setenv(timeline.ENV, str(path))
    timeline.mark("loop_entered", run="abc")
    timeline.mark("reported", epoch=2)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [m["event"] for m in lines] == ["loop_entered", "reported"]
    assert lines[0]["run"] == "abc" and lines[1]["epoch"] == 2
    assert lines[0]["t"] <= lines[1]["t"]


def test_process_start_is_when_the_process_began_not_when_asked():
    import subprocess
    import sys

    # a process that waits 0.5 s, then asks: its start is the process's, half a second back
    code = ("import time; time.sleep(0.5); from losstune.trainables.engine import timeline; "
            "print(time.time() - timeline.process_started_at())")
    age = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert 0.4 <= age < 30


def test_controller_marks_are_a_train_callback_only_when_marks_are_on(monkeypatch, tmp_path):
    from ray.train.v2._internal.execution.callback import ControllerCallback, WorkerGroupCallback

    monkeypatch.delenv(timeline.ENV, raising=False)
    assert timeline.controller_marks("abc") == []
    path = tmp_path / "timeline.jsonl"
    monkeypatch.setenv(timeline.ENV, str(path))
    [callback] = timeline.controller_marks("abc")
    assert isinstance(callback, ControllerCallback) and isinstance(callback, WorkerGroupCallback)
    callback.after_controller_start(None)
    callback.before_controller_execute_resize_decision(None)
    callback.after_worker_group_start(None)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [m["event"] for m in lines] == ["controller_started", "worker_group_starting", "worker_group_started"]
    assert all(m["run"] == "abc" for m in lines) and lines[0]["t_process"] <= lines[0]["t"]
