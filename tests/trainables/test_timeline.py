import json

from trainables import timeline


def test_mark_writes_nothing_when_off(monkeypatch, tmp_path):
    monkeypatch.delenv(timeline.ENV, raising=False)
    timeline.mark("loop_entered", run="abc")
    assert list(tmp_path.iterdir()) == []


def test_mark_appends_one_json_line_per_event(monkeypatch, tmp_path):
    path = tmp_path / "timeline.jsonl"
    monkeypatch.setenv(timeline.ENV, str(path))
    timeline.mark("loop_entered", run="abc")
    timeline.mark("reported", epoch=2)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [m["event"] for m in lines] == ["loop_entered", "reported"]
    assert lines[0]["run"] == "abc" and lines[1]["epoch"] == 2
    assert lines[0]["t"] <= lines[1]["t"]


def test_process_start_is_in_the_past():
    import time

    assert 0 < timeline.process_started_at() <= time.time()
