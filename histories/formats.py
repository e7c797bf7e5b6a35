"""History formats by name, detection by content, and one entry point to load or save any of them.

    jsonl       the native format (histories/jsonl.py): one JSON object per line
    edn         Jepsen EDN (histories/edn.py): a vector of op maps, or op maps one or many per line
    jepsen-log  Jepsen log lines (histories/jepsen_log.py): INFO  jepsen.util - P\t:type\t:f\tvalue
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import stat
from collections.abc import Callable, Iterator
from contextlib import closing
from typing import Any

from splitbrain.histories.errors import HistoryFormatError
from splitbrain.histories.history import History
from splitbrain.histories.jepsen_log import is_op_line, read_jepsen_log
from splitbrain.histories.jsonl import read_jsonl, write_jsonl
from splitbrain.histories.op import Op

FORMATS = ("jsonl", "edn", "jepsen-log")
WRITABLE_FORMATS = ("jsonl", "edn")

def _read_edn(path: str) -> History:
    from splitbrain.histories.edn import read_edn_history  # imported when needed: most checks read no EDN

    return read_edn_history(path)


_READERS: dict[str, Callable[[str], History]] = {
    "jsonl": read_jsonl,
    "edn": _read_edn,
    "jepsen-log": read_jepsen_log,
}
_EDN_STARTS = ("[", "(", "{", ";", "#")
_TRIED = (
    "tried jsonl (a JSON object per line), edn (starts with [, {, ( or ;), "
    "jepsen-log (lines like 'INFO  jepsen.util - 2\\t:ok\\t:cas\\t[3 0]')"
)


def _content_lines(path: str) -> Iterator[tuple[int, str]]:
    """(line number, text) of the non-blank lines of ``path``, read lazily."""
    with open(path, encoding="utf-8-sig") as fh:  # a byte-order mark is not content
        for lineno, text in enumerate(fh, start=1):
            if text.strip():
                yield lineno, text


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except (ValueError, RecursionError):  # the JSON reader says what is wrong, with the line
        return False


def detect_format(path: str) -> str:
    """The format of the history at ``path``, judged by its content.

    The first non-blank line decides: a JSON object -> jsonl (also a line starting with ``{"`` that does
    not parse, so the JSON reader reports what is wrong with it); a Jepsen op log line -> jepsen-log;
    ``[ ( { ; #`` -> edn; otherwise a Jepsen op log line further down (after the test's setup output)
    -> jepsen-log. A file with no content is jsonl (every reader gives an empty
    history for it). Anything else -> HistoryFormatError naming the formats tried.
    """
    return _guarded(path, lambda: _detect(path))


def _detect(path: str) -> str:
    with closing(_content_lines(path)) as lines:
        first = next(lines, None)
        if first is None:
            return "jsonl"
        first_lineno, first_text = first
        start = first_text.lstrip()
        if start.startswith("{") and (_is_json_object(start) or start.startswith('{"')):
            return "jsonl"
        if is_op_line(first_text):  # before EDN: a log line may begin with a bracketed timestamp
            return "jepsen-log"
        if start.startswith(_EDN_STARTS):
            return "edn"
        if any(is_op_line(text) for _, text in lines):
            return "jepsen-log"
    snippet = start.rstrip()[:40]
    raise HistoryFormatError(path, first_lineno, f"cannot tell the history format: {_TRIED}; found {snippet!r}")


def load_history(path: str, format: str = "auto") -> History:
    """Load a history in ``format`` (one of FORMATS, or "auto" to detect it from the content). A named
    pipe or a device is read (boundedly) into a temporary file first; errors still name ``path``."""
    if format != "auto" and format not in FORMATS:
        raise ValueError(f"unknown history format {format!r}; expected one of auto, {', '.join(FORMATS)}")
    with _regular_file(path) as readable:
        try:
            _refuse_binary(readable, path)
            chosen = detect_format(readable) if format == "auto" else format
            history = _guarded(readable, lambda: _READERS[chosen](readable))
        except HistoryFormatError as e:
            if readable != path:
                raise HistoryFormatError(path, e.line, e.message) from None
            raise
    history.source = path
    return history


# Bounds for what is not a regular file: a FIFO must offer data within FIFO_WAIT_S; a device is read to at
# most MAX_SPECIAL_BYTES (/dev/zero never ends).
FIFO_WAIT_S = 5.0
MAX_SPECIAL_BYTES = 256 * 1024 * 1024
_CHUNK = 1024 * 1024


@contextlib.contextmanager
def _regular_file(path: str) -> Iterator[str]:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise HistoryFormatError(path, None, "no such file") from None
    except OSError as e:
        raise HistoryFormatError(path, None, f"cannot read it ({e.strerror or e})") from None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        yield path
        return
    import tempfile

    data = _read_special(path, mode)
    with tempfile.NamedTemporaryFile(prefix="splitbrain-history-") as tmp:
        tmp.write(data)
        tmp.flush()
        yield tmp.name


def _read_special(path: str, mode: int) -> bytes:
    if stat.S_ISFIFO(mode):
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            ready, _, _ = select.select([fd], [], [], FIFO_WAIT_S)
            if not ready:
                raise HistoryFormatError(path, None, f"a named pipe with nothing to read after {FIFO_WAIT_S:g} s "
                                                     "(no writer?)")
            os.set_blocking(fd, True)
            return _read_bounded(path, lambda: os.read(fd, _CHUNK))
        finally:
            os.close(fd)
    with open(path, "rb") as fh:
        return _read_bounded(path, lambda: fh.read(_CHUNK))


def _read_bounded(path: str, read: Callable[[], bytes]) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := read():
        if not chunks and b"\0" in chunk:
            raise HistoryFormatError(path, None, "binary data (NUL bytes), not a history")
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_SPECIAL_BYTES:
            raise HistoryFormatError(path, None, f"not a regular file, and more than {MAX_SPECIAL_BYTES >> 20} MiB "
                                                 "came out of it: give a regular file")
    return b"".join(chunks)


def _refuse_binary(path: str, shown: str) -> None:
    """A NUL byte in the first 64 KiB means this is no text history (an image, /dev/zero's output)."""
    if os.path.isdir(path):
        return
    with open(path, "rb") as fh:
        head = fh.read(65536)
    if b"\0" in head:
        raise HistoryFormatError(shown, head[: head.index(b"\0")].count(b"\n") + 1,
                                 "binary data (a NUL byte), not a history")


def _guarded(path: str, read: Callable[[], Any]) -> Any:
    """Run ``read``, turning the ways a file cannot be read into a one-line HistoryFormatError."""
    try:
        return read()
    except RecursionError:
        raise HistoryFormatError(path, None, "values nested too deeply to read") from None
    except FileNotFoundError:
        raise HistoryFormatError(path, None, "no such file") from None
    except IsADirectoryError:
        raise HistoryFormatError(path, None, "is a directory, expected a history file") from None
    except PermissionError:
        raise HistoryFormatError(path, None, "permission denied") from None
    except UnicodeDecodeError as e:
        line = e.object[: e.start].count(b"\n") + 1 if isinstance(e.object, bytes) else None
        raise HistoryFormatError(path, line, f"expected UTF-8 text, found byte 0x{e.object[e.start]:02x}") from None


def save_history(history: History | list[Op], path: str, format: str) -> None:
    """Write ``history`` to ``path`` as jsonl or edn.

    JSON has no sets or tuples: for jsonl they are written as lists (sets sorted, when their elements
    can be ordered); a map with a key that is not a string, or a number JSON cannot hold (Decimal,
    Fraction), is refused with ValueError rather than written as something else.
    """
    if format == "edn":
        from splitbrain.histories.edn import write_edn_history

        write_edn_history(history, path)
    elif format == "jsonl":
        write_jsonl([_json_op(op, position) for position, op in enumerate(history)], path)
    elif format in FORMATS:
        raise ValueError(f"cannot write {format!r} histories; expected one of {', '.join(WRITABLE_FORMATS)}")
    else:
        raise ValueError(f"unknown history format {format!r}; expected one of {', '.join(WRITABLE_FORMATS)}")


def _json_op(op: Op, position: int) -> Op:
    try:
        return op.with_(value=_json_value(op.value), key=_json_value(op.key), error=_json_value(op.error))
    except ValueError as e:
        raise ValueError(f"op {position} (index {op.index}) cannot be written as JSON: {e}") from None


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, (set, frozenset)):
        items = [_json_value(v) for v in value]
        try:
            return sorted(items)
        except TypeError:
            return sorted(items, key=repr)
    if isinstance(value, dict):
        for k in value:
            if not isinstance(k, str):
                raise ValueError(f"map key {k!r} is not a string")
        return {k: _json_value(v) for k, v in value.items()}
    raise ValueError(f"{type(value).__name__} {value!r} has no JSON form")
