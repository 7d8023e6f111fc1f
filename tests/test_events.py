"""core.events: the schema, JSON round trip, NaN handling, rate limiting, terminal events."""

from __future__ import annotations

import io
import json
import math
import sys
from pathlib import Path

import pytest

from core.events import EVENT_TYPES, SCHEMA_VERSION, Event, EventWriter, read_events


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def lines_of(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_schema_fields_and_order():
    event = Event("metric", "job-1", epoch=2, step=10, data={"val_acc": 0.75})
    line = event.to_json()
    assert line == (
        '{"v":1,"type":"metric","job":"job-1","epoch":2,"step":10,"data":{"val_acc":0.75}}'
    )
    assert list(json.loads(line)) == ["v", "type", "job", "epoch", "step", "data"]
    assert SCHEMA_VERSION == 1
    assert EVENT_TYPES == ("progress", "metric", "log", "artifact", "done", "error")


def test_json_round_trip_keeps_every_field():
    event = Event("artifact", "j", epoch=None, step=3, data={"kind": "weights", "path": "é/b"})
    again = Event.from_json(event.to_json())
    assert again == event
    assert again.as_dict() == {
        "type": "artifact",
        "job": "j",
        "epoch": None,
        "step": 3,
        "data": {"kind": "weights", "path": "é/b"},
        "v": 1,
    }
    assert "é" in event.to_json()  # not \\u-escaped


def test_nan_and_inf_become_null_at_any_depth():
    data = {"loss": math.nan, "nested": {"x": math.inf, "ok": 1.5}, "list": [1.0, -math.inf]}
    parsed = json.loads(Event("metric", "j", data=data).to_json())["data"]
    assert parsed == {"loss": None, "nested": {"x": None, "ok": 1.5}, "list": [1.0, None]}
    assert math.isnan(data["loss"])  # the caller's dict is left alone


@pytest.mark.parametrize(
    "line",
    [
        "not json",
        '{"v":2,"type":"log","job":"j","data":{}}',
        '["v", 1]',
        '{"v":1,"type":"explode","job":"j","data":{}}',
    ],
)
def test_from_json_rejects_bad_lines(line):
    with pytest.raises(ValueError):
        Event.from_json(line)


def test_unknown_type_message_lists_the_types():
    with pytest.raises(ValueError, match="unknown event type 'progres'; expected one of"):
        Event("progres", "j")


def test_progress_is_rate_limited_with_a_fake_clock():
    clock = FakeClock()
    stream = io.StringIO()
    emit = EventWriter("j", [stream], max_progress_per_s=10, clock=clock)  # one per 0.1 s
    for now, done in [(0.0, 1), (0.05, 2), (0.1, 3), (0.15, 4), (0.19, 5), (0.2, 6)]:
        clock.now = now
        emit("progress", {"done": done, "total": 10})
    clock.now = 0.21
    emit("progress", {"done": 10, "total": 10})  # the end of a phase always passes
    emit("metric", {"train_loss": 1.0}, epoch=0)  # other types are never limited
    emit("metric", {"train_loss": 0.9}, epoch=1)
    events = lines_of(stream)
    assert [e["data"].get("done") for e in events if e["type"] == "progress"] == [1, 3, 6, 10]
    assert [e["epoch"] for e in events if e["type"] == "metric"] == [0, 1]
    assert emit.events_written == 6


def test_zero_rate_means_no_limit():
    stream = io.StringIO()
    emit = EventWriter("j", [stream], max_progress_per_s=0, clock=FakeClock())
    for done in range(5):
        emit("progress", {"done": done, "total": 10})
    assert len(lines_of(stream)) == 5


def test_terminal_event_written_exactly_once():
    stream = io.StringIO()
    emit = EventWriter("j", [stream])
    emit("done", {"run_dir": "r"})
    emit("error", {"message": "late failure"})
    emit("done", {"run_dir": "again"})
    events = lines_of(stream)
    assert [e["type"] for e in events] == ["done"]
    assert events[0]["data"] == {"run_dir": "r"}
    assert emit.finished


def test_listeners_get_event_objects_and_streams_are_flushed(tmp_path: Path):
    seen: list[Event] = []
    path = tmp_path / "run" / "events.jsonl"
    emit = EventWriter("job-7", listeners=[seen.append])
    emit.add_file(path)
    emit.log("hello", level="warning")
    emit("progress", {"done": 1, "total": 1}, epoch=0, step=1)
    # flushed per line: readable before close
    assert [e.type for e in read_events(path)] == ["log", "progress"]
    emit.close()
    assert [e.type for e in seen] == ["log", "progress"]
    assert seen[0].data == {"message": "hello", "level": "warning"}
    assert all(e.job == "job-7" for e in seen)


def test_close_leaves_stdout_open():
    emit = EventWriter("j", [sys.stdout])
    emit.close()
    assert not sys.stdout.closed


def test_read_events_skips_a_torn_last_line(tmp_path: Path):
    path = tmp_path / "events.jsonl"
    emit = EventWriter("j")
    emit.add_file(path)
    emit("metric", {"val_acc": 0.5}, epoch=0)
    emit("done", {"cancelled": False})
    emit.close()
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"v":1,"type":"progress","job":"j","da')  # killed mid-write
    events = read_events(path)
    assert [e.type for e in events] == ["metric", "done"]
    assert events[0].data == {"val_acc": 0.5}


def test_read_events_of_missing_file_is_empty(tmp_path: Path):
    assert read_events(tmp_path / "none.jsonl") == []
