"""The HTML report: what it shows for a failing run, how it stays bounded, and that it draws whatever state a
run directory is in."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from splitbrain.checkers.linearizable import check_linearizable
from splitbrain.checkers.models import kv
from splitbrain.harness.cli import main
from splitbrain.harness.report import build_report, write_report
from splitbrain.harness.report.faults import describe_fault, partition_text
from splitbrain.harness.report.node_logs import line_time
from splitbrain.harness.report.timeline import timeline_data
from splitbrain.histories.faults import active_spans, fault_windows
from splitbrain.histories.history import History
from splitbrain.histories.op import Op

from tests.report_helpers import MS, make_run, register_history

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"


def _embedded(page: str, element_id: str) -> dict:
    m = re.search(rf'<script type="application/json" id="{element_id}">(.*?)</script>', page, re.S)
    assert m, f"no #{element_id} in the page"
    return json.loads(m.group(1))


# -- faults ----------------------------------------------------------------------------------------------

def test_fault_windows_merge_to_exactly_the_availability_spans():
    h = register_history(600, faults=4)
    spans = fault_windows(h)
    assert len(spans) == 4 and all(s.end_index is not None and s.ended_by == "stop-partition" for s in spans)
    merged = []
    for s in spans:
        if merged and s.start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], s.end))
        else:
            merged.append((s.start, s.end))
    assert merged == active_spans(spans)


def test_a_fault_the_nemesis_reported_failed_and_one_still_active_at_the_end():
    ops = [Op(0, "invoke", "nemesis", "kill", "one", time=10), Op(1, "info", "nemesis", "kill", {"kill": ["node2"]},
                                                                   time=20, error="node2: no such process"),
           Op(2, "invoke", "nemesis", "pause", "one", time=30), Op(3, "info", "nemesis", "pause", {"pause": ["node1"]}, time=40),
           Op(4, "invoke", 0, "read", None, time=50), Op(5, "ok", 0, "read", 1, time=60)]
    spans = fault_windows(History(ops))
    kill, pause = spans
    assert kill.error and kill.end_index is None and kill.end == 60
    assert describe_fault(kill) == "kill node2" and describe_fault(pause) == "pause node1"


def test_a_partition_reads_as_its_sides():
    assert partition_text({"node1": ["node3"], "node2": ["node3"], "node3": ["node1", "node2"]}) == "node3 | node1 node2"
    ring = {"node1": ["node3"], "node2": [], "node3": ["node1"]}  # node2 bridges: no clean sides
    assert partition_text(ring) == "node1 drops node3; node3 drops node1"


# -- timeline --------------------------------------------------------------------------------------------

def test_a_long_history_keeps_a_window_around_the_failure_and_says_how_much_is_left_out():
    h = register_history(25_000, faults=2)
    ops = h.operations()
    focus = ops[20_000].call
    t = timeline_data(h, fault_windows(h), roles={focus: "failing", ops[10].call: "evidence"}, focus=focus)
    shown = {r[5] for r in t["ops"]}
    assert t["total"] == 25_000 and t["shown"] == 10_001 and t["extra"] == 1
    assert focus in shown and ops[10].call in shown          # the failure, and an op the evidence names
    assert t["left_before"] == 15_000 and t["left_after"] == 0
    assert ops[15_000].call in shown and ops[14_999].call not in shown


def test_a_lane_never_holds_two_processes_at_once():
    ops = []
    for p in range(30):  # process p lives in [10p, 10p + 25] ms: at most three at a time
        ops += [Op(len(ops), "invoke", p, "read", None, time=p * 10 * MS),
                Op(len(ops) + 1, "ok", p, "read", 1, time=(p * 10 + 25) * MS)]
    ops.sort(key=lambda o: o.time)
    h = History([o._replace(index=i) for i, o in enumerate(ops)])
    data = timeline_data(h, [])
    lanes: dict[int, list[tuple[float, float]]] = {}
    for lane, start, end, *_ in data["ops"]:
        lanes.setdefault(lane, []).append((start, end))
    assert len(lanes) == 3
    for spans in lanes.values():
        spans.sort()
        assert all(a[1] < b[0] for a, b in zip(spans, spans[1:], strict=False))


# -- the report of a failing run ----------------------------------------------------------------------

def test_the_report_of_a_failing_run_shows_the_op_that_cannot_be_placed(tmp_path: Path):
    run = make_run(tmp_path, stale_at=150)
    results = json.loads((run / "results.json").read_text())
    failing = results["linearizable"]["failure"]["op"]["invoke_index"]
    path, summary = build_report(run)
    page = path.read_text()
    assert summary.valid is False and path == run / "report.html"
    timeline = _embedded(page, "timeline-data")
    assert timeline["shown"] == timeline["total"] == 300
    assert [r[5] for r in timeline["ops"] if r[7] == "failing"] == [failing]
    assert len(timeline["faults"]) == 3 and timeline["faults"][0]["label"] == "partition primaries: node3 | node1 node2"
    window = _embedded(page, "window-data-1")
    assert failing in {r[5] for r in window["ops"]} and any(r[7] == "prefix" for r in window["ops"])
    assert page.count('<img class="plot"') == 3
    assert "saw start-partition" in page and "never excerpted" not in page  # node logs around the faults
    assert page.index("partition primaries: node3 | node1 node2 begins") < page.index("saw start-partition")
    assert "splitbrain repro" in page
    assert not re.search(r'(src|href)="(https?:)?//', page), "the report must not reach the network"


def test_write_report_prints_the_summary_and_never_raises(tmp_path: Path, capsys):
    import io

    run = make_run(tmp_path, stale_at=100)
    out = io.StringIO()
    assert write_report(run, out=out) == run / "report.html"
    text = out.getvalue()
    assert "ops 300" in text and "availability:" in text and "faults: partition 3" in text and "report:" in text
    broken = tmp_path / "not-writable"
    broken.mkdir()
    (broken / "report.html").mkdir()  # a directory where the file would go: os.replace fails
    out = io.StringIO()
    assert write_report(broken, out=out) is None
    assert "report: not written" in out.getvalue()


@pytest.mark.parametrize("damage", ["torn history", "no results", "broken test.json", "no history"])
def test_a_damaged_run_still_gets_a_report_that_says_what_is_missing(tmp_path: Path, damage: str):
    run = make_run(tmp_path, n_ops=120)
    history = run / "history.jsonl"
    if damage == "torn history":
        history.write_text(history.read_text()[:-40])
    elif damage == "no results":
        (run / "results.json").unlink()
    elif damage == "broken test.json":
        (run / "test.json").write_text('{"target": "raft", ')
    else:
        history.unlink()
    page = build_report(run)[0].read_text()
    expected = {"torn history": "truncated last line", "no results": "the history was not checked",
                "broken test.json": "test.json:1: invalid JSON", "no history": "no history.jsonl"}[damage]
    assert expected in page
    if damage == "no results":
        assert "NOT CHECKED" in page


def test_the_console_summary_of_a_run_that_ended_before_healing_says_so(tmp_path: Path):
    run = make_run(tmp_path, n_ops=120)
    lines = (run / "history.jsonl").read_text().splitlines()
    (run / "history.jsonl").write_text("\n".join(lines[:-2]) + "\n")  # no heal
    page = build_report(run)[0].read_text()
    assert "ended before the final heal" in page


# -- node logs ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("line", [
    "2026-01-01T12:00:01.500 INFO node1: elected",                        # the Raft store
    "2026-01-01 12:00:01,500 [myid:1] - INFO  [QuorumPeer] - LEADING",   # ZooKeeper (log4j)
    '{"level":"info","ts":"2026-01-01T12:00:01.500Z","msg":"elected"}',  # etcd (zap)
    "2026/01/01 12:00:01 [error] 12#12: upstream timed out",             # nginx error log
    '10.0.0.1 - - [01/Jan/2026:12:00:01 +0000] "POST /add HTTP/1.1" 200',  # nginx access log
])
def test_log_stamps_of_each_target_are_read(line: str):
    t = line_time(line)
    assert t is not None
    import datetime as dt

    when = dt.datetime.fromtimestamp(t, dt.UTC) if "Z" in line or "+0000" in line else dt.datetime.fromtimestamp(t)
    assert (when.hour, when.minute, when.second) == (12, 0, 1)


def test_a_line_without_a_stamp_has_no_time():
    assert line_time("Traceback (most recent call last):") is None


# -- Elle and the command line ----------------------------------------------------------------------------

@pytest.mark.corpus
@pytest.mark.skipif(not (CORPUS / "elle").is_dir(), reason="no ../shared/corpus/elle (the shared corpus)")
def test_an_elle_check_with_report_draws_its_cycles(tmp_path: Path, capsys):
    history = CORPUS / "elle" / "si-without-g-single.edn"
    assert main(["check", str(history), "--checker", "list-append", "--report", str(tmp_path)]) == 1
    page = (tmp_path / "si-without-g-single.html").read_text()
    assert "report: " in capsys.readouterr().out
    assert "G2-item" in page and "T1 &lt; T2 because" in page
    assert page.count('<img class="cycle"') == 2 if shutil.which("dot") else "Graphviz (dot) is not installed" in page


def test_without_graphviz_a_cycle_is_shown_as_text(tmp_path: Path, monkeypatch):
    from splitbrain.harness.report import evidence

    monkeypatch.setattr(evidence.shutil, "which", lambda name: None)
    ops = [Op(0, "invoke", 0, "txn", [["append", 1, 1]]), Op(1, "ok", 0, "txn", [["append", 1, 1]]),
           Op(2, "invoke", 1, "txn", [["r", 1, None]]), Op(3, "ok", 1, "txn", [["r", 1, []]])]
    path = tmp_path / "h.jsonl"
    path.write_text("\n".join(json.dumps(o.to_dict()) for o in ops) + "\n")
    assert main(["check", str(path), "--checker", "list-append", "--report", str(tmp_path / "r")]) == 1
    page = (tmp_path / "r" / "h.html").read_text()
    assert "Graphviz (dot) is not installed" in page and '<img class="cycle"' not in page


def test_report_of_a_history_file_and_bad_paths(tmp_path: Path, capsys, monkeypatch):
    h = register_history(50)
    path = tmp_path / "h.jsonl"
    path.write_text("\n".join(json.dumps(o.to_dict()) for o in h) + "\n")
    monkeypatch.chdir(tmp_path)
    assert main(["report", str(path)]) == 0
    assert (tmp_path / "h.html").is_file() and "NOT CHECKED" in (tmp_path / "h.html").read_text()
    capsys.readouterr()
    assert main(["report", str(tmp_path / "missing.jsonl")]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.jsonl: no such file" in err
    (tmp_path / "empty-dir").mkdir()
    assert main(["report", str(tmp_path / "empty-dir")]) == 3
    assert "not a run directory" in capsys.readouterr().err


def test_the_linearizability_failure_carries_the_state_after_each_placed_op():
    ops = [Op(0, "invoke", 0, "write", 1), Op(1, "ok", 0, "write", 1), Op(2, "invoke", 0, "write", 2),
           Op(3, "ok", 0, "write", 2), Op(4, "invoke", 1, "read", None), Op(5, "ok", 1, "read", 1)]
    result = check_linearizable(History(ops), kv(None))
    assert result.valid is False
    assert result.details["failure"]["prefix_states"] == [[0, "1"], [2, "2"]]


# -- lock and set evidence, progress ----------------------------------------------------------------------

def _ops(spec: list[tuple]) -> History:
    """(type, process, f, value) with times 10 ms apart."""
    return History([Op(i, kind, p, f, v, time=i * 10 * MS) for i, (kind, p, f, v) in enumerate(spec)])


def test_two_overlapping_lock_holds_are_marked_over_the_timeline(tmp_path: Path):
    from splitbrain.checkers.lock import check_lock
    from splitbrain.harness.report import write_history_report
    from splitbrain.harness.report.inputs import history_inputs

    a, b = {"lock": "l", "owner": "a"}, {"lock": "l", "owner": "b"}
    h = _ops([("invoke", 0, "acquire", a), ("ok", 0, "acquire", {**a, "token": 1}),
              ("invoke", 1, "acquire", b), ("ok", 1, "acquire", {**b, "token": 2}),
              ("invoke", 0, "release", {**a, "token": 1}), ("ok", 0, "release", {**a, "token": 1}),
              ("invoke", 1, "release", {**b, "token": 2}), ("ok", 1, "release", {**b, "token": 2})])
    result = check_lock(h)
    assert result.valid is False
    path = tmp_path / "lock.html"
    write_history_report(history_inputs(h, {"valid": False, "lock": result.to_json()}, path), path)
    page = path.read_text()
    marks = _embedded(page, "timeline-data")["marks"]
    assert [m["label"] for m in marks] == ["owner a holds token 1", "owner b holds token 2"]
    assert marks[0]["start"] == 10.0 and marks[0]["end"] == 40.0  # from the grant to the release's invocation
    assert "Two holds at once" in page


def test_a_lost_element_is_listed_with_its_ops(tmp_path: Path):
    from splitbrain.checkers.basic import check_set
    from splitbrain.harness.report import write_history_report
    from splitbrain.harness.report.inputs import history_inputs

    h = _ops([("invoke", 0, "add", 1), ("ok", 0, "add", 1), ("invoke", 1, "add", 2), ("ok", 1, "add", 2),
              ("invoke", 0, "read", None), ("ok", 0, "read", [1])])
    result = check_set(h)
    path = tmp_path / "set.html"
    write_history_report(history_inputs(h, {"valid": False, "set": result.to_json()}, path), path)
    page = path.read_text()
    assert "acknowledged but lost (1)" in page
    roles = {r[5]: r[7] for r in _embedded(page, "timeline-data")["ops"]}
    assert roles == {0: "", 2: "evidence", 4: "evidence"}  # the lost add and the read that misses it


def test_a_long_check_shows_its_progress_on_a_terminal(monkeypatch):
    import io

    from splitbrain.harness import check_progress as cp

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(cp, "QUIET_S", 0.0)
    monkeypatch.setattr(cp, "EVERY_S", 0.0)
    stream = Terminal()
    with cp.check_progress("h.jsonl", stream):
        assert check_linearizable(register_history(600, faults=0), kv(None)).valid is True
    assert "checking h.jsonl: 9/10 partitions" in stream.getvalue() and "ops/s" in stream.getvalue()
    quiet = io.StringIO()  # not a terminal: nothing
    with cp.check_progress("h.jsonl", quiet):
        check_linearizable(register_history(600, faults=0), kv(None))
    assert quiet.getvalue() == ""


def test_a_result_the_report_cannot_draw_is_shown_as_text_and_the_rest_is_drawn(tmp_path: Path):
    run = make_run(tmp_path, n_ops=100, stale_at=50)
    results = json.loads((run / "results.json").read_text())
    results["linearizable"]["failure"]["partial_linearization"] = 7  # not a list: a damaged results.json
    (run / "results.json").write_text(json.dumps(results))
    page = build_report(run)[0].read_text()
    assert "this result could not be drawn: TypeError" in page
    assert _embedded(page, "timeline-data")["shown"] == 100 and page.count('<img class="plot"') == 3
