"""The list-append checker on hand-made histories: each anomaly, the corpus, explanations, bad input."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
from splitbrain.checkers.elle import ListAppendChecker, check_list_append, write_cycle_dots
from splitbrain.checkers.elle.synth import pattern, schedule
from splitbrain.histories.errors import HistoryFormatError
from splitbrain.histories.history import History
from splitbrain.histories.op import Op

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "elle"


def ok(*mops):
    """A committed txn: (invocation value with reads blanked, completion value)."""
    return ([[f, k, None if f == "r" else v] for f, k, v in mops], [list(m) for m in mops], "ok")


def concurrent(*txns) -> History:
    """All txns invoked first, then all completed: no real-time order between them."""
    ops = [Op(i, "invoke", i, "txn", inv) for i, (inv, _, _) in enumerate(txns)]
    ops += [Op(len(txns) + i, typ, i, "txn", done) for i, (_, done, typ) in enumerate(txns) if typ]
    return History(ops)


def sequential(*txns, one_process: bool = True) -> History:
    """Each txn completes before the next is invoked; on one process (a new one after an indeterminate
    txn), or each on its own process."""
    ops, process = [], 0
    for inv, done, typ in txns:
        ops.append(Op(len(ops), "invoke", process, "txn", inv))
        if typ:
            ops.append(Op(len(ops), typ, process, "txn", done))
        if not one_process or typ not in ("ok", "fail"):
            process += 1
    return History(ops)


def anomalies(result) -> list[str]:
    return result.details["anomaly_types"]


@pytest.mark.parametrize("name, expected", [
    ("G0", ["G0"]), ("G1c", ["G1c"]), ("G-single", ["G-single"]), ("G2-item", ["G2-item"]),
    ("G1a", ["G1a"]), ("G1b", ["G1b", "G-single"]), ("internal", ["internal"]),
    ("duplicate-elements", ["duplicate-elements"]), ("incompatible-order", ["incompatible-order"]),
    ("garbage-read", ["garbage-read"]),
])
def test_each_pattern_is_named(name, expected):
    history = schedule(random.Random(7), [pattern(name, [1, 2])])
    result = check_list_append(history, consistency_model="serializable")
    assert sorted(anomalies(result)) == sorted(expected)
    assert result.valid is False


def test_serial_history_without_anomalies_is_valid():
    history = sequential(ok(["append", "x", 1], ["r", "y", []]), ok(["r", "x", [1]], ["append", "y", 1]),
                         ok(["r", "x", [1]], ["r", "y", [1]], ["append", "x", 2]))
    result = check_list_append(history)
    assert result.valid is True
    assert anomalies(result) == [] and result.details["not"] == []


def test_g0_cycle_explained_with_both_ww_edges():
    history = concurrent(ok(["append", "x", 1], ["append", "y", 1]), ok(["append", "x", 2], ["append", "y", 2]),
                         ok(["r", "x", [1, 2]], ["r", "y", [2, 1]]))
    result = check_list_append(history, consistency_model="read-uncommitted")
    assert result.valid is False
    (cycle,) = result.details["cycles"]
    assert cycle["anomaly"] == "G0"
    assert [s["kind"] for s in cycle["steps"]] == ["ww", "ww"]
    reasons = " ".join(s["reason"] for s in cycle["steps"])
    assert "appended 2 after" in reasons and "appended 1 after" in reasons
    assert result.details["not"] == ["read-uncommitted"]


def test_g_single_text_names_the_read_and_the_missed_append():
    history = concurrent(ok(["append", 8, 1], ["append", 9, 3]), ok(["r", 8, []], ["r", 9, [3]]))
    result = check_list_append(history, consistency_model="snapshot-isolation")
    (cycle,) = result.details["cycles"]
    assert cycle["anomaly"] == "G-single"
    text = cycle["text"]
    assert "T2 read T1's append of 3 to key 9 (wr)" in text or "T1 read T2's append of 3 to key 9 (wr)" in text
    assert "read key 8 empty" in text and "(rw)" in text
    assert result.valid is False
    assert result.details["not"] == ["consistent-view", "repeatable-read"]


def test_write_skew_is_allowed_by_snapshot_isolation_but_not_serializable():
    history = concurrent(ok(["r", "x", []], ["append", "y", 1]), ok(["r", "y", []], ["append", "x", 1]))
    assert check_list_append(history, consistency_model="snapshot-isolation").valid is True
    serial = check_list_append(history, consistency_model="serializable")
    assert serial.valid is False
    assert anomalies(serial) == ["G2-item"]
    assert serial.details["not"] == ["repeatable-read"]


def test_g_nonadjacent_is_found_and_forbidden_by_snapshot_isolation():
    # T1 -rw-> T2 -wr-> T3 -rw-> T4 -wr-> T1: two rw edges, never adjacent; no G-single.
    history = concurrent(
        ok(["r", "a", []], ["r", "d", [4]]),                # T1: misses T2's a, sees T4's d
        ok(["append", "a", 2], ["append", "b", 2]),         # T2
        ok(["r", "b", [2]], ["r", "c", []]),                # T3: sees T2's b, misses T4's c
        ok(["append", "c", 4], ["append", "d", 4]),         # T4
    )
    result = check_list_append(history, consistency_model="snapshot-isolation")
    assert anomalies(result) == ["G-nonadjacent"]
    assert result.valid is False
    (cycle,) = result.details["cycles"]
    assert cycle["anomaly"] == "G-nonadjacent"
    assert sorted(s["kind"] for s in cycle["steps"]) == ["rw", "rw", "wr", "wr"]


def test_stale_read_after_completion_is_g_single_realtime():
    # T1 appends and completes; T2, on another process, starts afterwards and still reads the empty list.
    history = sequential(ok(["append", "x", 1]), ok(["r", "x", []]), one_process=False)
    assert check_list_append(history, consistency_model="serializable").valid is True
    strict = check_list_append(history, consistency_model="strict-serializable")
    assert strict.valid is False
    assert anomalies(strict) == ["G-single-realtime"]
    assert check_list_append(history, consistency_model="serializable", realtime=True).details[
        "anomaly_types"] == ["G-single-realtime"]


def test_process_order_violation_is_g_single_process():
    # Same process, concurrent with nothing else; process edges only (no real-time edges requested).
    history = sequential(ok(["append", "x", 1]), ok(["r", "x", []]))
    result = check_list_append(history, consistency_model="strong-session-serializable")
    assert anomalies(result) == ["G-single-process"]
    assert result.valid is False
    assert "strong-session-snapshot-isolation" in result.details["not"]


def test_unobserved_append_is_ordered_after_the_observed_ones():
    # T3's append of 3 is never read, but it must come after 2, which T2 read as the last element.
    history = concurrent(ok(["append", "x", 1], ["append", "x", 2]), ok(["r", "x", [1, 2]], ["append", "y", 5]),
                         ok(["append", "x", 3], ["r", "y", []]))
    result = check_list_append(history, consistency_model="serializable")
    assert anomalies(result) == ["G2-item"]


def test_failed_txns_did_not_happen_and_observed_info_txns_did():
    fail = ([["append", "x", 1]], [["append", "x", 1]], "fail")
    info = ([["append", "y", 7]], [["append", "y", 7]], "info")
    history = sequential(fail, info, ok(["r", "x", []], ["r", "y", [7]]))
    result = check_list_append(history, consistency_model="strict-serializable")
    assert result.valid is True
    assert result.details["stats"]["in_graph"] == 2
    # the same info txn, never observed, stays out of the graph
    history = sequential(fail, info, ok(["r", "x", []]))
    assert check_list_append(history).details["stats"]["in_graph"] == 1


def test_indeterminate_txn_that_was_observed_joins_cycles():
    info_without_completion = ([["append", "x", 1], ["append", "y", 1]], None, None)
    history = concurrent(info_without_completion, ok(["r", "x", []], ["r", "y", [1]]))
    result = check_list_append(history, consistency_model="serializable")
    assert anomalies(result) == ["G-single"]


def test_future_read_is_reported():
    history = concurrent(ok(["r", "x", [1]], ["append", "x", 1]))
    result = check_list_append(history, consistency_model="read-committed")
    assert "future-read" in anomalies(result)
    assert result.valid is False  # future-read implies G1c


def test_internal_read_disagreeing_with_own_append():
    history = concurrent(ok(["r", "x", [5]], ["append", "x", 6], ["r", "x", [5]]), ok(["append", "x", 5]))
    result = check_list_append(history, consistency_model="serializable")
    (case,) = result.details["anomalies"]["internal"]
    assert case["expected"] == [5, 6]
    # read committed does not forbid internal anomalies (Elle's choice)
    assert check_list_append(history, consistency_model="read-committed").valid is True


def test_duplicate_appends_make_the_check_unknown():
    history = concurrent(ok(["append", "x", 1]), ok(["append", "x", 1]))
    result = check_list_append(history)
    assert result.valid == "unknown"
    assert "appended twice" in result.explanation


def test_details_are_json_and_dot_files_are_written(tmp_path):
    history = concurrent(ok(["append", "x", 1], ["append", "y", 1]), ok(["r", "x", []], ["r", "y", [1]]))
    result = check_list_append(history, consistency_model="serializable")
    json.dumps(result.to_json())
    paths = write_cycle_dots(result.details["cycles"], str(tmp_path / "elle"))
    assert [os.path.basename(p) for p in paths] == ["G-single-0.dot"]
    dot = Path(paths[0]).read_text()
    assert dot.startswith('digraph "G-single"') and "T1 -> T2" in dot and "color=red" in dot


def test_checker_class_takes_the_model_from_opts():
    history = concurrent(ok(["r", "x", []], ["append", "y", 1]), ok(["r", "y", []], ["append", "x", 1]))
    checker = ListAppendChecker()
    assert checker.check(None, history, {"consistency_model": "snapshot-isolation"}).valid is True
    assert checker.check(None, history, {}).valid is False


@pytest.mark.parametrize("value, message", [
    ([["w", "x", 1]], 'expected a micro-op ["append", key, value] or ["r", key, value]'),
    ("nope", "expected a txn value"),
])
def test_malformed_txn_is_a_one_line_error_with_the_line(value, message):
    history = History([Op(0, "invoke", 0, "txn", value), Op(1, "ok", 0, "txn", value)], source="h.jsonl",
                      lines=[1, 2])
    with pytest.raises(HistoryFormatError) as e:
        check_list_append(history)
    assert message in str(e.value) and str(e.value).startswith("h.jsonl:")
    assert "\n" not in str(e.value)


def test_a_read_that_is_not_a_list_is_an_error():
    history = History([Op(0, "invoke", 0, "txn", [["r", "x", None]]), Op(1, "ok", 0, "txn", [["r", "x", 3]])],
                      source="h.jsonl", lines=[1, 2])
    with pytest.raises(HistoryFormatError, match=r"h.jsonl:2: expected the read of list key 'x' to be a list"):
        check_list_append(history)


def test_non_txn_op_is_an_error():
    history = History([Op(0, "invoke", 0, "read", None), Op(1, "ok", 0, "read", 1)], source="h", lines=[3, 4])
    with pytest.raises(HistoryFormatError, match="h:3: expected f 'txn'"):
        check_list_append(history)


def test_unknown_model_is_rejected():
    with pytest.raises(ValueError, match="unknown consistency model 'serialisable'"):
        check_list_append(concurrent(ok(["append", "x", 1])), consistency_model="serialisable")


@pytest.mark.corpus
@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"corpus not found at {CORPUS}")
def test_corpus_si_without_g_single_reports_g2_item_only():
    from splitbrain.histories.formats import load_history

    manifest = json.loads((CORPUS / "manifest.json").read_text())
    entry = manifest["files"]["si-without-g-single.edn"]
    history = load_history(str(CORPUS / "si-without-g-single.edn"))
    repeatable = check_list_append(history, consistency_model="repeatable-read")
    assert anomalies(repeatable) == entry["anomalies"] == ["G2-item"]
    assert repeatable.valid is False and entry["expected"] == "invalid"
    si = check_list_append(history, consistency_model="snapshot-isolation")
    assert "G-single" not in anomalies(si)
    assert si.valid is True  # its rw edges are adjacent: snapshot isolation allows this history


def test_failed_append_inside_the_version_order_does_not_hide_a_cycle():
    # x: 1 (T1), 2 (failed), 3 (T3); y: 1 (T3), 2 (T1). T1 -ww-> T3 on x skips the failed append.
    failed = ([["append", "x", 2]], [["append", "x", 2]], "fail")
    history = concurrent(ok(["append", "x", 1], ["append", "y", 2]), failed, ok(["append", "x", 3], ["append", "y", 1]),
                         ok(["r", "x", [1, 2, 3]], ["r", "y", [1, 2]]))
    result = check_list_append(history, consistency_model="read-uncommitted")
    assert set(anomalies(result)) == {"G0", "G1a"}
    assert result.valid is False


def test_readers_before_a_failed_append_still_precede_the_next_committed_one():
    # T2 read x = [1]; the next committed append (3) follows a failed one (2): T2 -rw-> T3 -wr-> T2.
    failed = ([["append", "x", 2]], [["append", "x", 2]], "fail")
    history = concurrent(ok(["append", "x", 1]), failed, ok(["append", "x", 3], ["append", "y", 1]),
                         ok(["r", "x", [1]], ["r", "y", [1]]), ok(["r", "x", [1, 2, 3]]))
    result = check_list_append(history, consistency_model="serializable")
    assert "G-single" in anomalies(result)


def test_a_cycle_search_that_runs_out_of_budget_is_unknown_not_valid():
    history = concurrent(ok(["r", "x", []], ["append", "y", 1]), ok(["r", "y", []], ["append", "x", 1]))
    result = check_list_append(history, consistency_model="serializable", budget_per_component=0)
    assert result.valid == "unknown"
    assert result.details["cycle_search_timeout"] == {"component_sizes": [2]}
    assert "gave up" in result.explanation


def test_counts_are_complete_while_kept_cases_and_text_are_capped(monkeypatch):
    import splitbrain.checkers.elle.report as report

    monkeypatch.setattr(report, "KEPT_PER_TYPE", 2)
    monkeypatch.setattr(report, "EXPLAINED_PER_TYPE", 1)
    history = concurrent(*[ok(["r", k, [99]]) for k in "abc"])
    result = check_list_append(history)
    assert result.details["anomaly_counts"] == {"garbage-read": 3}
    assert len(result.details["anomalies"]["garbage-read"]) == 2
    assert "... and 2 more garbage-read" in result.explanation


def test_every_step_of_every_cycle_has_a_specific_reason():
    from splitbrain.checkers.elle.synth import PATTERNS, list_append_history

    history = list_append_history(3, 400, anomalies=PATTERNS, every=40, fail_rate=0.1, info_rate=0.1)
    result = check_list_append(history)
    assert result.details["cycles"]
    for cycle in result.details["cycles"]:
        for step in cycle["steps"]:
            assert "are related by" not in step["reason"], step
    # including chains across a failed append
    failed = ([["append", "x", 2]], [["append", "x", 2]], "fail")
    history = concurrent(ok(["append", "x", 1], ["append", "y", 2]), failed, ok(["append", "x", 3], ["append", "y", 1]),
                         ok(["r", "x", [1, 2, 3]], ["r", "y", [1, 2]]))
    (cycle,) = check_list_append(history).details["cycles"]
    assert any("appended 3 after" in s["reason"] and "appended 1" in s["reason"] for s in cycle["steps"])


def test_a_bad_micro_op_in_a_jsonl_file_names_its_line(tmp_path):
    from splitbrain.histories.jsonl import read_jsonl, write_jsonl

    ops = [Op(0, "invoke", 0, "txn", [["append", "x", 1]]), Op(1, "ok", 0, "txn", [["append", "x", 1]]),
           Op(2, "invoke", 1, "txn", [["append", "x"]]), Op(3, "ok", 1, "txn", [["append", "x"]])]
    path = tmp_path / "history.jsonl"
    write_jsonl(ops, str(path))
    with pytest.raises(HistoryFormatError) as e:
        check_list_append(read_jsonl(str(path)))
    assert str(e.value).startswith(f"{path}:4: expected a micro-op")
