"""The history writer: what a killed harness leaves is readable, and the line encoder is the JSON one."""

from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from splitbrain.histories.formats import detect_format, load_history
from splitbrain.histories.jsonl import JsonlWriter, _encode, dumps_op, read_jsonl, read_jsonl_prefix
from splitbrain.histories.op import Op


def ops(n: int) -> list[Op]:
    return [Op(i, "invoke" if i % 2 == 0 else "ok", i // 2 % 3, "cas", [1, 2], key=i % 4, time=10 * i)
            for i in range(n)]


@pytest.mark.timeout(60)
def test_a_writer_killed_after_append_returned_leaves_every_op_readable(tmp_path: Path) -> None:
    """kill -9 right after appends returned: the file holds every one of them, and nothing else."""
    path = tmp_path / "history.jsonl"
    code = ("import os, signal, sys; from splitbrain.histories.jsonl import JsonlWriter; "
            "from splitbrain.histories.op import Op\n"
            f"w = JsonlWriter({str(path)!r})\n"
            "for i in range(1000): w.append(Op(i, 'invoke' if i % 2 == 0 else 'ok', i // 2 % 3, 'cas', [1, 2]))\n"
            "w.write(Op(1000, 'invoke', 0, 'read', None))\n"  # written, never flushed: may be lost
            "os.kill(os.getpid(), signal.SIGKILL)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30)
    assert done.returncode == -signal.SIGKILL
    history = read_jsonl(str(path))
    assert [op.index for op in history] == list(range(1000))
    assert detect_format(str(path)) == "jsonl" and len(load_history(str(path))) == 1000
    assert read_jsonl_prefix(str(path))[1] is None  # no torn line: a batch is one write


def test_a_second_writer_appends_after_the_first(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    with JsonlWriter(str(path)) as first:
        for op in ops(10):
            first.append(op)
    with JsonlWriter(str(path)) as second:
        for op in ops(20)[10:]:
            second.write(op)
    assert list(read_jsonl(str(path))) == ops(20)


def test_written_ops_reach_the_file_at_flush_in_order(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    with JsonlWriter(str(path)) as w:
        for op in ops(50_000):
            w.write(op)
        assert path.read_bytes() == b""  # buffered until the flush
        w.flush()
        assert path.read_text().splitlines() == [dumps_op(op) for op in ops(50_000)]


@pytest.mark.timeout(60)
def test_a_write_the_file_system_refuses_is_an_error_not_a_lost_batch(tmp_path: Path) -> None:
    """A file size limit (as a full disk) makes the batch's write fail part-way: flush raises, and the
    ops before the limit stay in the file."""
    path = tmp_path / "history.jsonl"
    code = ("import resource; from splitbrain.histories.jsonl import JsonlWriter; from splitbrain.histories.op import Op\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (10000, 10000))\n"
            f"w = JsonlWriter({str(path)!r})\n"
            "for i in range(1000): w.write(Op(i, 'invoke', i, 'cas', [1, 2]))\n"
            "try:\n    w.flush()\nexcept OSError as e:\n    print(e.errno)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.stdout.strip() == str(errno.EFBIG), done.stderr
    assert path.stat().st_size == 10000
    history, torn = read_jsonl_prefix(str(path))
    assert torn is not None and [op.index for op in history] == list(range(len(history))) and len(history) > 50


def test_a_pipe_is_written_too(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = subprocess.Popen([sys.executable, "-c", f"print(open({str(fifo)!r}).read().count(chr(10)))"],
                              stdout=subprocess.PIPE, text=True)
    with JsonlWriter(str(fifo)) as w:
        for op in ops(5):
            w.append(op)
    out, _ = reader.communicate(timeout=30)
    assert out.strip() == "5"


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
                     max_leaves=6)


@settings(max_examples=500, deadline=None)
@given(index=st.integers(0, 2**40), type_=st.sampled_from(["invoke", "ok", "fail", "info"]),
       process=st.integers(-3, 10**6) | st.text(), f=st.text(), value=_json, key=_json,
       time=st.integers(-1, 2**60), node=st.none() | st.text(), error=_json)
def test_the_line_encoder_writes_what_json_writes(index, type_, process, f, value, key, time, node, error) -> None:
    op = Op(index, type_, process, f, value, key, time, node, error)
    assert dumps_op(op) == _encode(op.to_dict())


def test_the_line_encoder_on_random_ops_of_a_run() -> None:
    rng = random.Random(3)
    for _ in range(2000):
        op = Op(rng.randrange(10**6), rng.choice(["invoke", "ok"]), rng.randrange(20), rng.choice(["read", "write"]),
                rng.choice([None, rng.randrange(5), [rng.randrange(5), rng.randrange(5)]]), rng.randrange(9),
                rng.randrange(10**12), rng.choice([None, "n1"]), rng.choice([None, "timed-out"]))
        assert dumps_op(op) == _encode(op.to_dict())
