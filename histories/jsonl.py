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

import json
import os
import sys
from collections.abc import Iterator
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


def dumps_op(op: Op) -> str:
    return _encode(op.to_dict())


class JsonlWriter:
    """Appends ops to a history file, one line each, flushed (and optionally fsync'd) as it goes.

    A harness killed with -9 loses no op whose ``append`` (or whose batch's ``flush``) returned: the lines
    reach the kernel before it returns (``fsync=True`` also survives a machine crash, at a cost).
    """

    def __init__(self, path: str, *, fsync: bool = False) -> None:
        self.path = path
        self._fh = open(path, "a", encoding="utf-8")
        self._fsync = fsync

    def append(self, op: Op) -> None:
        """Write one op and flush it."""
        self.write(op)
        self.flush()

    def write(self, op: Op) -> None:
        """Write one op without flushing (the caller flushes a batch with ``flush``)."""
        self._fh.write(dumps_op(op) + "\n")

    def flush(self) -> None:
        self._fh.flush()
        if self._fsync:
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_jsonl(history: History | list[Op], path: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for op in history:
            fh.write(dumps_op(op) + "\n")
