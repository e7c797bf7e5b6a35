"""`splitbrain sim` as a user runs it: a verdict, the seed, exact replay, exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest
from splitbrain.harness.cli import main


@pytest.mark.timeout(120)
def test_same_seed_same_history_bytes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--seed", "7", "--ops", "300", "--out", str(tmp_path / "a")]) == 0
    assert main(["sim", "--seed", "7", "--ops", "300", "--out", str(tmp_path / "b")]) == 0
    a = (tmp_path / "a" / "history.jsonl").read_bytes()
    assert a and a == (tmp_path / "b" / "history.jsonl").read_bytes()
    assert "seed 7" in capsys.readouterr().out


@pytest.mark.timeout(120)
def test_a_bug_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--seed", "1", "--ops", "500", "--bug", "stale-read"]) == 1
    assert "INVALID (seed 1" in capsys.readouterr().out


def test_bad_faults_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--seed", "1", "--faults", "frob"]) == 3
    assert "unknown fault" in capsys.readouterr().out
