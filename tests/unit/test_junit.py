"""JUnit XML as CI systems read it: every file validated against the schema Jenkins validates JUnit files
against (tests/data/junit.xsd: the format CI systems read, written from its published rules), not only parsed."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace

import pytest
import xmlschema
from splitbrain.harness.junit import ERROR, FAILURE, SKIPPED, Case, junit_xml, run_case, write_junit

SCHEMA = xmlschema.XMLSchema(str(Path(__file__).resolve().parents[1] / "data" / "junit.xsd"))


def parsed(text: str) -> dict:
    SCHEMA.validate(text)
    return SCHEMA.to_dict(text)


def test_every_kind_of_case_is_valid_junit() -> None:
    cases = [
        Case("safe seed 1 #1", "gate.safe", 7.25, output="report: /r/report.html\n[[ATTACHMENT|/r/report.html]]"),
        Case("safe seed 2 #1", "gate.safe", 1234.5678, FAILURE, "seed 2: [linearizable] key 1: cannot linearize",
             "expected-valid", "seed: 2\nrepro: splitbrain repro /r"),
        Case("hunt seed 1 #1", "gate.hunt", 3.0, ERROR, "seed 1: the run failed", "run-failed", "console: /c.log"),
        Case("hunt seed 2 #1", "gate.hunt", 0.0, SKIPPED, "not needed (the test had already passed)"),
        Case("odd \x00\x1b chars <&> \u00e9 \U0001f600", "gate.odd", 0.001, FAILURE, "bad \x07 bell", "x", "a\x0bb"),
    ]
    doc = parsed(junit_xml("gate", cases, timestamp=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
                           properties={"plan_dir": "/p"}))
    suite = doc["testsuite"][0]
    assert (suite["@name"], suite["@tests"], suite["@failures"], suite["@errors"], suite["@skipped"]) == \
        ("gate", "5", "2", "1", "1")
    assert suite["@timestamp"] == "2026-01-02T03:04:05+00:00" and suite["@time"] == "1244.819"
    first, second, third, fourth, fifth = suite["testcase"]
    assert first["@classname"] == "gate.safe" and "failure" not in first
    assert first["system-out"] == ["report: /r/report.html\n[[ATTACHMENT|/r/report.html]]"]
    assert second["failure"][0]["@message"].startswith("seed 2: [linearizable]")
    assert second["failure"][0]["$"] == "seed: 2\nrepro: splitbrain repro /r"
    assert second["@time"] == "1234.568"
    assert third["error"][0]["@type"] == "run-failed" and fourth["skipped"][0]["@message"].startswith("not needed")
    assert fifth["@name"] == "odd \ufffd\ufffd chars <&> \u00e9 \U0001f600"  # what XML cannot hold is replaced


def test_the_schema_refuses_what_ci_would_not_read() -> None:
    """The check can fail: a test case without a name, a time that is not a number."""
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        SCHEMA.validate('<testsuites><testsuite name="x" tests="1" failures="0" errors="0">'
                        '<testcase classname="c"/></testsuite></testsuites>')
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        SCHEMA.validate('<testsuites><testsuite name="x" tests="1" failures="0" errors="0" time="1.5s">'
                        '</testsuite></testsuites>')


@pytest.mark.parametrize("valid,error,interrupted,status,kind", [
    (True, None, None, None, None),
    (False, None, None, "failure", "invalid"),
    ("unknown", None, None, "error", "unknown"),
    (True, "RemoteError: node1", None, "error", "run-failed"),
    (True, None, "SIGINT", "error", "interrupted"),
])
def test_a_single_run_as_junit(tmp_path: Path, valid: object, error: str | None, interrupted: str | None,
                               status: str | None, kind: str | None) -> None:
    (tmp_path / "report.html").write_text("<html>")
    results = {"valid": valid, "explanation": "[linearizable] key 1: cannot linearize\nthe rest"} if valid is False \
        else {"valid": valid}
    outcome = SimpleNamespace(valid=valid, error=error, interrupted=interrupted, results=results,
                              run_dir=SimpleNamespace(path=tmp_path))
    target = tmp_path / "out" / "junit.xml"
    target.parent.mkdir()
    write_junit(target, junit_xml("raft-register", [run_case(outcome, "raft-register", 7, 8.5)]))
    case = parsed(target.read_text())["testsuite"][0]["testcase"][0]
    assert case["@name"] == "raft-register seed 7"
    assert case["system-out"] == [f"report: {tmp_path}/report.html\n[[ATTACHMENT|{tmp_path}/report.html]]"]
    if status is None:
        assert not {"failure", "error"} & set(case)
        return
    element = case[status][0]
    assert element["@type"] == kind
    assert f"repro: splitbrain repro {tmp_path}" in element["$"] and "seed: 7" in element["$"]
    if valid is False:
        assert element["@message"] == "[linearizable] key 1: cannot linearize"
