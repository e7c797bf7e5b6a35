"""`splitbrain check` as a user runs it: verdict lines, JSON, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from splitbrain.harness.cli import main
from splitbrain.histories.jsonl import write_jsonl
from splitbrain.histories.op import Op

from tests.corpus import CORPUS, require_corpus


def _write(path: Path, events: list[tuple]) -> str:
    write_jsonl([Op(index=i, type=t, process=p, f=f, value=v) for i, (t, p, f, v) in enumerate(events)], str(path))
    return str(path)


@pytest.fixture
def good(tmp_path: Path) -> str:
    return _write(tmp_path / "good.jsonl", [("invoke", 0, "write", 1), ("ok", 0, "write", 1),
                                             ("invoke", 1, "read", None), ("ok", 1, "read", 1)])


@pytest.fixture
def bad(tmp_path: Path) -> str:
    return _write(tmp_path / "bad.jsonl", [("invoke", 0, "write", 1), ("ok", 0, "write", 1),
                                            ("invoke", 1, "read", None), ("ok", 1, "read", 2)])


def test_valid_exits_0(good: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", good, "--model", "register"]) == 0
    assert capsys.readouterr().out.startswith("VALID")


def test_invalid_exits_1_and_explains(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", bad, "--model", "register"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("INVALID") and "cannot linearize" in out and "read -> ok 2" in out


def test_several_files_give_a_line_each_and_a_summary(good: str, bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", good, bad, "--model", "register"]) == 1
    out = capsys.readouterr().out
    assert "2 histories: 1 valid, 1 invalid, 0 unknown, 0 unreadable" in out


def test_json_output(good: str, bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    main(["check", good, bad, "--model", "register", "--json"])
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["valid"] for r in records] == [True, False]
    assert all(r["elapsed_ms"] >= 0 and r["file"] for r in records)
    assert records[1]["failure"]["op"]["value"] == 2 and "cannot linearize" in records[1]["explanation"]


def test_unknown_exits_2(tmp_path: Path) -> None:
    n = 14
    events = [("invoke", p, "write", p) for p in range(n)] + [("ok", p, "write", p) for p in range(n)]
    path = _write(tmp_path / "hard.jsonl", events + [("invoke", n, "read", None), ("ok", n, "read", 999)])
    assert main(["check", path, "--model", "register", "--max-configs", "100"]) == 2


def test_malformed_file_is_one_line_with_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "broken.jsonl"
    p.write_text('{"type": "invoke", "process": 0, "f": "read", "value": null}\n{"type": "ok", "process": 0\n')
    assert main(["check", str(p), "--model", "register"]) == 3
    out = capsys.readouterr().out.strip()
    assert out.count("\n") == 0 and f"{p}:2:" in out


def test_inconsistent_history_names_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "twice.jsonl", [("invoke", 0, "write", 1), ("invoke", 0, "write", 2)])
    assert main(["check", path, "--model", "register"]) == 3
    out = capsys.readouterr().out
    assert f"{path}:2:" in out and "still open" in out


def test_op_the_model_does_not_know_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "odd.jsonl", [("invoke", 0, "enqueue", 1), ("ok", 0, "enqueue", 1)])
    assert main(["check", path, "--model", "register"]) == 3
    assert "does not know f='enqueue'" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [
    ["check", "x.jsonl"],                                          # neither --model nor --checker
    ["check", "x.jsonl", "--model", "nope"],
    ["check", "x.jsonl", "--model", "register", "--init", "{"],
    ["check", "x.jsonl", "--model", "register", "--checker", "lock"],
    ["check", "x.jsonl", "--model", "register", "--time-limit", "0"],
])
def test_usage_errors_exit_3_with_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 3
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err


def test_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "/nonexistent/h.jsonl", "--model", "register"]) == 3
    assert "/nonexistent/h.jsonl: no such file" in capsys.readouterr().out


@pytest.mark.parametrize(("init", "expected"), [("0", 0), ("nil", None), ('{"x": 0}', {"x": 0}), ("{:x 0}", {"x": 0})])
def test_init_accepts_json_and_edn(init: str, expected: object) -> None:
    from splitbrain.harness.cli import parse_value

    assert parse_value(init, "--init") == expected


@pytest.mark.corpus
def test_console_script_on_the_corpus() -> None:
    """The installed `splitbrain` command, as the README shows it."""
    require_corpus()
    files = sorted(str(p) for p in (CORPUS / "porcupine-etcd").glob("etcd_00*.log"))
    proc = subprocess.run([sys.executable, "-m", "splitbrain.harness.cli", "check", *files, "--model", "cas-register"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr  # etcd_000 is invalid
    assert f"{len(files)} histories:" in proc.stdout
    assert "Traceback" not in proc.stderr
