"""Every bad input gets one clear line and its exit code, never a traceback, and a run refused for bad
options creates nothing: no run directory, no namespace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from splitbrain.harness.cli import main

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="local nodes need root")


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    return lines[0]


def namespaces() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


# -- run ----------------------------------------------------------------------------------------------

BAD_RUNS = [
    (["--time-limit", "inf"], "--time-limit: expected a finite number"),
    (["--time-limit", "1e308"], "--time-limit must be more than 0 and at most"),
    (["--time-limit", "nan"], "--time-limit: expected a finite number"),
    (["--rate", "nan"], "--rate: expected a finite number"),
    (["--rate", "0"], "--rate must be more than 0"),
    (["--nemesis-interval", "1e-9"], "makes more than"),
    (["--recovery", "-1"], "--recovery must be at least 0"),
    (["--client-timeout", "inf"], "--client-timeout: expected a finite number"),
    (["--concurrency", "0"], "--concurrency must be a whole number from 1 to 200"),
    (["--seed", "-3"], "--seed must be a whole number"),
    (["--nodes", "1"], "target raft needs at least 3 nodes"),
    (["--nodes", "40"], "--nodes must be a whole number from 1 to 9"),
    (["--bug", "nosuch"], "unknown --bug nosuch; expected one of"),
    (["--target", "etcd", "--bug", "stale-read"], "--bug goes with targets that have deliberate bugs"),
    (["--nemesis", ""], "--nemesis: expected all, none, or a comma list"),
    (["--nemesis", "kill,"], "--nemesis: expected all, none, or a comma list"),
    (["--nemesis", "frob"], "unknown nemesis frob"),
    (["--name", "../../x"], "--name '../../x': expected"),
    (["--name", "a/b"], "--name 'a/b': expected"),
    (["--target", "nosuch"], "unknown --target 'nosuch'; expected one of"),
    (["--target", "nosuch.module:spec"], "cannot import nosuch.module"),
    (["--workload", "set"], "target raft has no workload 'set'"),
    (["--target-opt", "frob=1"], "target raft has no option frob"),
    (["--target", "etcd", "--read", "stale"], "--read 'stale' is not a read mode"),
    (["--ssh-hosts", "node1=h"], "the --ssh-* options go with --remote ssh"),
    (["--remote", "ssh"], "--remote ssh needs --ssh-hosts"),
]


@pytest.mark.parametrize("args,expected", BAD_RUNS, ids=[" ".join(a) or "empty" for a, _ in BAD_RUNS])
def test_bad_run_options_are_one_line_exit_3_and_create_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                args: list[str], expected: str) -> None:
    store = tmp_path / "runs"
    before = namespaces()
    started = time.monotonic()
    assert main(["run", "--store", str(store), "--time-limit", "5", *args]) == 3
    assert time.monotonic() - started < 20  # refused at once: no schedule built for ever, no waiting
    line = one_error_line(capsys.readouterr().err)
    assert expected in line, line
    assert not store.exists() or not any(store.iterdir())
    assert namespaces() == before


@pytest.mark.parametrize("where", ["file", "proc", "readonly"])
def test_a_store_that_cannot_hold_runs_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    where: str) -> None:
    if where == "readonly" and os.geteuid() != 0:
        pytest.skip("a read-only mount needs root")
    store = {"file": tmp_path / "afile", "proc": Path("/proc/self/splitbrain"), "readonly": tmp_path / "ro"}[where]
    if where == "file":
        store.write_text("x")
    if where == "readonly":
        store.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(store)], check=True)
    try:
        assert main(["run", "--store", str(store), "--time-limit", "2"]) == 3
    finally:
        if where == "readonly":
            subprocess.run(["umount", str(store)], check=True)
    line = one_error_line(capsys.readouterr().err)
    assert f"--store {store}" in line


# -- check ----------------------------------------------------------------------------------------------

def check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "splitbrain.harness.cli", "check", *args], capture_output=True,
                          text=True, timeout=60)


VALID_LINES = ('{"type":"invoke","process":0,"f":"write","value":1}\n'
               '{"type":"ok","process":0,"f":"write","value":1}\n')


@pytest.mark.parametrize("content,fmt", [("", "auto"), (None, "auto"), (VALID_LINES, "jepsen-log")],
                         ids=["empty", "dev-null", "wrong-format"])
def test_a_history_with_no_client_operations_is_unknown_not_valid(tmp_path: Path, content: str | None,
                                                                   fmt: str) -> None:
    path = "/dev/null" if content is None else str(tmp_path / "h.jsonl")
    if content is not None:
        Path(path).write_text(content)
    done = check(path, "--model", "register", "--format", fmt)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout.startswith("UNKNOWN") and "no client operations" in done.stdout
    if fmt != "auto":
        assert f"is --format {fmt} right?" in done.stdout


def test_bad_histories_are_one_line_naming_the_file_and_line(tmp_path: Path) -> None:
    deep = tmp_path / "deep.jsonl"
    deep.write_text('{"type":"invoke","process":0,"f":"write","value":' + "[" * 1000 + "]" * 1000 + "}\n")
    nan = tmp_path / "nan.jsonl"
    nan.write_text(VALID_LINES + '{"type":"invoke","process":1,"f":"read","value":NaN}\n')
    big = tmp_path / "big.jsonl"
    big.write_text('{"type":"invoke","process":0,"f":"write","value":' + "7" * 5000 + "}\n")
    model = tmp_path / "model.jsonl"
    model.write_text(VALID_LINES + '{"type":"invoke","process":1,"f":"frob","value":1}\n'
                                   '{"type":"ok","process":1,"f":"frob","value":1}\n')
    for path, where, what in ((deep, ":1:", "nested too deeply"), (nan, ":3:", "NaN is not a JSON value"),
                              (big, ":1:", "a number of more than"), (model, ":3:", "does not know f='frob'")):
        done = check(str(path), "--model", "register")
        assert done.returncode == 3, done.stdout + done.stderr
        assert "Traceback" not in done.stderr and len(done.stdout.splitlines()) == 1, done.stdout
        assert f"{path}{where}" in done.stdout and what in done.stdout, done.stdout


def test_a_byte_order_mark_is_not_content(tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + VALID_LINES.encode())
    done = check(str(path), "--model", "register")
    assert done.returncode == 0 and done.stdout.startswith("VALID"), done.stdout + done.stderr


def test_devices_and_pipes_are_read_boundedly(tmp_path: Path) -> None:
    started = time.monotonic()
    done = check("/dev/zero", "--model", "register")
    assert done.returncode == 3 and "binary data" in done.stdout
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    done = check(str(fifo), "--model", "register")  # no writer: refused after a short wait, not for ever
    assert done.returncode == 3 and "named pipe with nothing to read" in done.stdout
    assert time.monotonic() - started < 40
    writer = subprocess.Popen(["sh", "-c", f"printf '%s' '{VALID_LINES.strip()}' > {fifo}"])
    done = check(str(fifo), "--model", "register")
    writer.wait(timeout=10)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("args,expected", [
    (["--init", "9" * 5000], "--init: expected a JSON or EDN value"),
    (["--init", "NaN"], "--init: expected a JSON or EDN value"),
    (["--max-configs", "0"], "--max-configs must be a positive"),
    (["--max-configs", "-5"], "--max-configs must be a positive"),
    (["--time-limit", "nan"], "--time-limit must be a positive number"),
])
def test_bad_check_options_are_one_line_exit_3(tmp_path: Path, args: list[str], expected: str) -> None:
    path = tmp_path / "h.jsonl"
    path.write_text(VALID_LINES)
    done = check(str(path), "--model", "register", *args)
    assert done.returncode == 3
    line = one_error_line(done.stderr)
    assert expected in line and len(line) < 300, line


# -- analyze --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("damage,expected", [
    ("no-history", "no history in this run directory"),
    ("test-list", "expected a JSON object of the test's options"),
    ("unknown-workload", "unknown --workload 'nosuch'"),
    ("test-garbage", "invalid JSON"),
])
def test_a_damaged_run_directory_is_one_line_exit_3(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    damage: str, expected: str) -> None:
    run_dir = tmp_path / "raft-register" / "20260101T000000.000"
    run_dir.mkdir(parents=True)
    test = {"target": "raft", "workload": "register", "nemesis": [], "nodes": 3, "seed": 1}
    (run_dir / "history.jsonl").write_text(VALID_LINES)
    if damage == "no-history":
        (run_dir / "history.jsonl").unlink()
    if damage == "unknown-workload":
        test["workload"] = "nosuch"
    text = json.dumps([test] if damage == "test-list" else test)
    (run_dir / "test.json").write_text("{not json" if damage == "test-garbage" else text)
    assert main(["analyze", str(run_dir)]) == 3
    line = one_error_line(capsys.readouterr().err)
    assert expected in line, line
