"""JUnit XML, the test report every CI system reads (Jenkins, GitLab, GitHub Actions' reporters).

    <testsuites>  <testsuite name=PLAN tests= failures= errors= skipped= time= timestamp=>
      <testcase classname=PLAN.TEST name="TEST seed S #R" time=>
        <failure message="the checker's one-line reason" type="invalid">seed, run, repro command</failure>
        <system-out>report: RUN/report.html  [[ATTACHMENT|RUN/report.html]]</system-out>

The shape is the one CI systems accept (tests/data/junit.xsd states it as a schema, and
tests/unit/test_junit.py validates every file against it); the ``[[ATTACHMENT|path]]`` line is how Jenkins
and GitLab link a file to a test case. Pure: cases in, text out.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import socket
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

PASSED, FAILURE, ERROR, SKIPPED = "passed", "failure", "error", "skipped"
# XML 1.0 cannot hold these characters at all, not even escaped
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@dataclass
class Case:
    """One test case: ``status`` passed | failure | error | skipped; ``message`` its one line (the
    checker's reason), ``kind`` the failure's type, ``details`` the element's text (seed, run, repro),
    ``output`` what goes to system-out (the report's path)."""

    name: str
    classname: str
    time_s: float = 0.0
    status: str = PASSED
    message: str = ""
    kind: str = ""
    details: str = ""
    output: str = ""


def _text(value: Any) -> str:
    return _NOT_XML.sub("\ufffd", str(value))


def _seconds(value: float) -> str:
    return f"{max(value, 0.0):.3f}"  # Surefire's time: digits, at most three decimals


def attachment(path: str | os.PathLike[str]) -> str:
    return f"[[ATTACHMENT|{os.fspath(path)}]]"


def junit_xml(suite: str, cases: Sequence[Case], *, timestamp: dt.datetime | None = None,
              time_s: float | None = None, properties: dict[str, str] | None = None) -> str:
    """The JUnit XML of one test suite (``suite``: the plan's name) holding ``cases``."""
    counts = {status: sum(1 for c in cases if c.status == status) for status in (FAILURE, ERROR, SKIPPED)}
    total = sum(c.time_s for c in cases) if time_s is None else time_s
    stamp = (timestamp or dt.datetime.now(dt.UTC)).replace(microsecond=0).isoformat()
    root = ET.Element("testsuites", name=_text(suite), tests=str(len(cases)), failures=str(counts[FAILURE]),
                      errors=str(counts[ERROR]), time=_seconds(total))
    element = ET.SubElement(root, "testsuite", name=_text(suite), tests=str(len(cases)),
                            failures=str(counts[FAILURE]), errors=str(counts[ERROR]), skipped=str(counts[SKIPPED]),
                            time=_seconds(total), timestamp=stamp, hostname=_text(socket.gethostname()))
    if properties:
        props = ET.SubElement(element, "properties")
        for name, value in properties.items():
            ET.SubElement(props, "property", name=_text(name), value=_text(value))
    for case in cases:
        item = ET.SubElement(element, "testcase", name=_text(case.name), classname=_text(case.classname),
                             time=_seconds(case.time_s))
        if case.status in (FAILURE, ERROR, SKIPPED):
            outcome = ET.SubElement(item, case.status, message=_text(case.message))
            if case.kind:
                outcome.set("type", _text(case.kind))
            outcome.text = _text(case.details) if case.details else None
        if case.output:
            ET.SubElement(item, "system-out").text = _text(case.output)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def check_junit_path(path: str | os.PathLike[str], option: str = "--junit") -> None:
    """ConfigError, before anything runs, when the JUnit file could not be written there."""
    from splitbrain.control.errors import ConfigError

    target = os.path.abspath(os.fspath(path))
    directory = os.path.dirname(target)
    if os.path.isdir(target):
        raise ConfigError(f"{option} {path}: is a directory; expected a file name")
    if not os.path.isdir(directory):
        raise ConfigError(f"{option} {path}: no such directory {directory}")
    if not os.access(directory, os.W_OK):
        raise ConfigError(f"{option} {path}: the directory {directory} is not writable")


def write_junit(path: str | os.PathLike[str], text: str) -> None:
    """Written whole or not at all (a CI step reading it never sees half a file)."""
    target = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(target))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(target)}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, target)


def run_case(outcome: Any, test_name: str, seed: Any, time_s: float) -> Case:
    """The case of one `splitbrain run` (expected valid): failure when invalid, error when it is unknown
    or the run failed."""
    results = outcome.results or {}
    run_dir = outcome.run_dir.path
    reason = first_line(results.get("explanation") or outcome.error or "")
    body = "\n".join([f"seed: {seed}", f"run: {run_dir}", f"repro: splitbrain repro {run_dir}"])
    report = run_dir / "report.html"
    output = f"report: {report}\n{attachment(report)}" if report.is_file() else f"run: {run_dir}"
    case = Case(name=f"{test_name} seed {seed}", classname=f"splitbrain.{test_name}", time_s=time_s,
                details=body, output=output)
    if outcome.valid is False:
        case.status, case.kind, case.message = FAILURE, "invalid", reason or "the history is invalid"
    elif outcome.error:
        case.status, case.kind, case.message = ERROR, "run-failed", f"the run failed: {reason}"
    elif outcome.interrupted:
        case.status, case.kind, case.message = ERROR, "interrupted", f"interrupted by {outcome.interrupted}"
    elif outcome.valid != True:  # noqa: E712 - "unknown" is truthy
        case.status, case.kind, case.message = ERROR, "unknown", reason or "the checkers could not decide"
    return case


def first_line(text: str) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    if not lines:
        return ""
    line = lines[0]
    return line if len(line) <= 300 else line[:297] + "..."
