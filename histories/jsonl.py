"""The native history format: JSON Lines, one op per line.

Schema (one object per line; see README "History format"):
  type     "invoke" | "ok" | "fail" | "info"                          (required)
  process  integer for a client process, or a string such as "nemesis" (required)
  f        string, the operation's name                               (required)
  value    any JSON value (null for a read's invocation)              (optional, default null)
  key      any JSON value, the independent key                        (optional)
  index    integer, strictly increasing                               (optional, default: position)
  time     integer, ns since the test started                         (optional)
  node     string, the node the client talked to                      (optional)
  error    any JSON value describing a failure                        (optional)
"""

from __future__ import annotations

import errno
import json
import os
import stat
import sys
from collections.abc import Callable, Iterator
from typing import IO, Any

from splitbrain.histories.errors import HistoryFormatError
from splitbrain.histories.history import History
from splitbrain.histories.op import OP_TYPES, Op

_KNOWN_FIELDS = frozenset(("index", "type", "process", "f", "value", "key", "time", "node", "error"))


def op_from_record(record: Any, position: int, file: str | None, line: int) -> Op:
    """Validate one decoded JSON record and build its Op (``position`` is the default index)."""
    if not isinstance(record, dict):
        raise HistoryFormatError(file, line, f"expected a JSON object per line, got {type(record).__name__}")
    for field in ("type", "process", "f"):
        if field not in record:
            raise HistoryFormatError(file, line, f"missing field {field!r} (every op needs type, process, f)")
    t = record["type"]
    if t not in OP_TYPES:
        raise HistoryFormatError(file, line, f"field 'type' must be one of invoke, ok, fail, info; got {t!r}")
    p = record["process"]
    if isinstance(p, bool) or not isinstance(p, (int, str)):
        raise HistoryFormatError(file, line, f"field 'process' must be an integer or a string, got {p!r}")
    f = record["f"]
    if not isinstance(f, str):
        raise HistoryFormatError(file, line, f"field 'f' must be a string, got {f!r}")
    index = record.get("index", position)
    if isinstance(index, bool) or not isinstance(index, int):
        raise HistoryFormatError(file, line, f"field 'index' must be an integer, got {index!r}")
    time = record.get("time", -1)
    if time is None:
        time = -1
    if isinstance(time, bool) or not isinstance(time, int):
        raise HistoryFormatError(file, line, f"field 'time' must be an integer (ns), got {time!r}")
    node = record.get("node")
    if node is not None and not isinstance(node, str):
        raise HistoryFormatError(file, line, f"field 'node' must be a string, got {node!r}")
    unknown = set(record) - _KNOWN_FIELDS
    if unknown:
        raise HistoryFormatError(file, line, f"unknown field(s) {', '.join(sorted(unknown))}")
    return Op(index=index, type=t, process=p, f=f, value=record.get("value"), key=record.get("key"),
              time=time, node=node, error=record.get("error"))


def value_error_text(e: ValueError) -> str:
    """What json's ValueErrors mean, in one short phrase."""
    if "integer string conversion" in str(e):
        return f"a number of more than {sys.get_int_max_str_digits()} digits"
    return str(e)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def iter_jsonl(stream: IO[str], file: str | None = None) -> Iterator[tuple[Op, int]]:
    """Stream (op, line number) from a JSON Lines history; blank lines are skipped."""
    position = 0
    for lineno, text in enumerate(stream, start=1):
        if not text.strip():
            continue
        try:
            record = json.loads(text, parse_constant=_no_constant)
        except json.JSONDecodeError as e:
            if not text.endswith("\n"):
                # A torn last line (the writer was killed mid-write): everything before it is intact.
                raise HistoryFormatError(file, lineno, f"truncated last line (invalid JSON: {e.msg})") from None
            raise HistoryFormatError(file, lineno, f"invalid JSON: {e.msg} at column {e.colno}") from None
        except RecursionError:
            raise HistoryFormatError(file, lineno, "JSON nested too deeply to read") from None
        except ValueError as e:  # NaN/Infinity, or an integer of more digits than Python converts
            raise HistoryFormatError(file, lineno, f"invalid JSON: {value_error_text(e)}") from None
        yield op_from_record(record, position, file, lineno), lineno
        position += 1


def read_jsonl(path: str) -> History:
    with open(path, encoding="utf-8-sig") as fh:
        pairs = list(iter_jsonl(fh, path))
    return History((op for op, _ in pairs), source=path, lines=[ln for _, ln in pairs])


def read_jsonl_prefix(path: str) -> tuple[History, int | None]:
    """A history that may end in a torn line (the harness was killed mid-write, the only damage kill -9
    can do): the intact ops before it, and the torn line's number (None when the file is whole). Any
    other damage is still a HistoryFormatError."""
    pairs: list[tuple[Op, int]] = []
    dropped = None
    with open(path, encoding="utf-8-sig") as fh:
        try:
            for pair in iter_jsonl(fh, path):
                pairs.append(pair)
        except HistoryFormatError as e:
            if not str(e.message).startswith("truncated last line"):
                raise
            dropped = e.line
    return History((op for op, _ in pairs), source=path, lines=[ln for _, ln in pairs]), dropped


_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_encode_str = json.encoder.encode_basestring  # what that encoder writes for a str (ensure_ascii=False)


def dumps_op(op: Op) -> str:
    """The op's JSON line (without the newline): ``Op.to_dict`` encoded compactly, the fixed fields written
    directly (the recorder writes one per event: this is its hot path)."""
    index, type_, process, f, value, key, time, node, error = op
    if type(index) is not int or type(f) is not str or type(type_) is not str:
        return _encode(op.to_dict())
    head = f'{{"index":{index},"type":{_encode_str(type_)},"process":'
    head += f"{process}" if type(process) is int else _encode(process)
    head += f',"f":{_encode_str(f)}'
    if key is not None:
        head += f',"key":{key}' if type(key) is int else f',"key":{_encode(key)}'
    head += ',"value":null' if value is None else f',"value":{value}' if type(value) is int else f',"value":{_encode(value)}'
    if type(time) is not int:
        return _encode(op.to_dict())
    if time >= 0:
        head += f',"time":{time}'
    if node is not None:
        head += f',"node":{_encode(node)}'
    if error is not None:
        head += f',"error":{_encode(error)}'
    return head + "}"


class JsonlWriter:
    """Appends ops to a history file, one line each, flushed (and optionally fsync'd) as it goes.

    A harness killed with -9 loses no op whose ``append`` (or whose batch's ``flush``) returned: the lines
    are in the kernel's page cache before it returns (``fsync=True`` also survives a machine crash, at a
    cost). ``write`` only buffers; ``flush`` hands the batch to the kernel in one system call. To a
    regular file that call is made holding the GIL (see _write_holding_gil), which is what keeps the
    recorder above 50,000 ops/s; a pipe or special file, which may block, gets a plain ``os.write``.
    """

    def __init__(self, path: str, *, fsync: bool = False) -> None:
        self.path = path
        self._fsync = fsync
        self._lines: list[str] = []
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0), 0o666)
        regular = stat.S_ISREG(os.fstat(self._fd).st_mode)
        self._write = _write_holding_gil() if regular else None
        self._write = self._write or os.write

    def append(self, op: Op) -> None:
        """Write one op and flush it."""
        self.write(op)
        self.flush()

    def write(self, op: Op) -> None:
        """Buffer one op (the caller flushes a batch with ``flush``)."""
        self._lines.append(dumps_op(op))

    def flush(self) -> None:
        """Every op written so far handed to the kernel (and on the device, with ``fsync=True``)."""
        if self._lines:
            lines = self._lines
            self._lines = []
            lines.append("")
            data = "\n".join(lines).encode("utf-8")
            while data:  # a write to a regular file is whole unless the disk is full (then it raises)
                data = data[self._write(self._fd, data):]
        if self._fsync:
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            try:
                self.flush()
            finally:
                os.close(self._fd)
                self._fd = -1

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _write_holding_gil() -> Callable[[int, bytes], int] | None:
    """``os.write`` without letting go of the GIL (libc's write through ctypes.PyDLL), or None.

    os.write releases the GIL for the system call; the other worker threads take it, and the recording
    thread then waits for it to come back: measured 40,000 ops/s against 83,000 holding it (no-op client,
    10 workers). A write of a few KiB to a regular file is a copy into the page cache, a microsecond or two;
    holding the GIL for it costs the other threads nothing they would not wait for anyway."""
    try:
        import ctypes
        libc = ctypes.PyDLL(None, use_errno=True)  # PyDLL: the call keeps the GIL
        write = libc.write
    except (ImportError, OSError, AttributeError):
        return None
    write.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t)
    write.restype = ctypes.c_ssize_t

    def write_gil(fd: int, data: bytes) -> int:
        while True:
            done = write(fd, data, len(data))
            if done >= 0:
                return done
            err = ctypes.get_errno()
            if err != errno.EINTR:
                raise OSError(err, os.strerror(err))

    return write_gil


def write_jsonl(history: History | list[Op], path: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for op in history:
            fh.write(dumps_op(op) + "\n")
