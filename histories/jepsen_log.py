"""Jepsen log lines: the ops a Jepsen test logs through ``jepsen.util/log-op``.

    INFO  jepsen.util - 2\t:ok\t:cas\t[3 0]
    INFO  jepsen.util - 4\t:info\t:write\t:timed-out
    2020-07-14 15:05:52,455{GMT}\tINFO\t[jepsen worker 0] jepsen.util: 0\t:invoke\t:read\tnil

Fields are process, type, f, value and an optional error, separated by tabs or runs of spaces (both occur
in real logs). Process, f, value and error are EDN. Old Jepsen logged a timeout as the value
``:timed-out`` of an :info (or :fail) line; it becomes ``error="timed-out"`` and the value is the
invocation's argument, which is what the op was trying to do. Other log lines are skipped.
"""

from __future__ import annotations

import re
from typing import Any

from splitbrain.histories.errors import HistoryFormatError
from splitbrain.histories.history import History
from splitbrain.histories.op import OP_TYPES, Op

# "jepsen.util - " (log4j style) or "jepsen.util: " (logback style), then a process and a :type. A line
# that gets this far is an op line: anything wrong after it is an error, not other log output.
OP_LINE = re.compile(r"\bjepsen\.util(?:\s+-|:)\s+(?P<process>-?\d+|:[^\s:][^\s]*)\s+(?P<type>:[^\s]*)(?P<rest>.*)$")

# The lines nearly every log is made of, read by one regex (the EDN reader takes the rest): a process, a
# type, an :f keyword, and nil, an integer, a pair of integers or :timed-out, nothing after it.
_INT = r"-?(?:0|[1-9][0-9]*)"
FAST_LINE = re.compile(
    rf"\bjepsen\.util(?:\s+-|:)\s+({_INT})\s+:(invoke|ok|fail|info)\s+:([A-Za-z_*!?][\w*!?<>=+.\-]*)\s+"
    rf"(?:(nil)|({_INT})|\[({_INT})[\s,]+({_INT})\]|(:timed-out))[ \t]*$")

_SIMPLE_F = re.compile(r"\s+:([A-Za-z_*!?][\w*!?<>=+.\-]*)(?=\s|$)")
_TIMED_OUT = ":timed-out"


def is_op_line(line: str) -> bool:
    """True when ``line`` is a Jepsen op log line (well-formed or not)."""
    return OP_LINE.search(line) is not None


def _process_of(token: str) -> int | str:
    return int(token) if token[0] != ":" else token[1:]


def parse_edn_prefix(text: str, file: str | None, line: int) -> Any:
    from splitbrain.histories.edn import parse_edn_prefix as parse  # only for the lines the fast path leaves

    return parse(text, file, line)


def _op_fields(rest: str, file: str | None, line: int) -> tuple[str, Any, bool, Any]:
    """From the text after the type: (f, value, value was :timed-out, error or None)."""
    simple_f = _SIMPLE_F.match(rest)
    if simple_f is not None:  # the usual :keyword, without the general EDN reader
        f, after_f = simple_f.group(1), rest[simple_f.end():]
    else:
        parsed_f = parse_edn_prefix(rest, file, line)
        if parsed_f is None:
            raise HistoryFormatError(file, line, "expected the op's :f after its type, found the end of the line")
        f, after_f = parsed_f
    if not isinstance(f, str):
        raise HistoryFormatError(file, line, f"expected the op's :f to be a keyword, found {f!r}")
    parsed_value = parse_edn_prefix(after_f, file, line)
    if parsed_value is None:
        raise HistoryFormatError(file, line, f"expected a value after :{f} (nil when there is none), found the end of the line")
    value, after_value = parsed_value
    timed_out = after_f[: len(after_f) - len(after_value)].strip() == _TIMED_OUT
    return f, value, timed_out, _error_field(after_value.strip(), file, line)


def _error_field(text: str, file: str | None, line: int) -> Any:
    """The optional trailing error. Jepsen prints it with ``str``, not ``pr-str``, so a string error has
    no quotes: read it as one EDN value when it is one, else keep the raw text."""
    if not text:
        return None
    try:
        parsed = parse_edn_prefix(text, file, line)
    except HistoryFormatError:
        return text
    if parsed is None or parsed[1].strip():
        return text
    return parsed[0]


def read_jepsen_log(path: str) -> History:
    """Read the op lines of a Jepsen log; other lines are skipped. An empty file is an empty history."""
    ops: list[Op] = []
    lines: list[int] = []
    open_arguments: dict[Any, Any] = {}  # process -> value of its open invocation
    fast = FAST_LINE.search
    with open(path, encoding="utf-8-sig") as fh:
        for lineno, raw in enumerate(fh, start=1):
            text = raw.rstrip("\r\n")
            q = fast(text)
            if q is not None:
                process_text, type_, f, is_nil, number, first, second, timed_out = q.groups()
                process = int(process_text)
                value: Any = None if is_nil else int(number) if number is not None else \
                    [int(first), int(second)] if first is not None else "timed-out"
                error = None
                if type_ == "invoke":
                    open_arguments[process] = value
                else:
                    argument = open_arguments.pop(process, None)
                    if timed_out and type_ != "ok":
                        value, error = argument, "timed-out"
                ops.append(Op(len(ops), type_, process, f, value, None, -1, None, error))
                lines.append(lineno)
                continue
            m = OP_LINE.search(text)
            if m is None:
                continue
            type_ = m.group("type")[1:]
            if type_ not in OP_TYPES:
                raise HistoryFormatError(
                    path, lineno, f"expected the op type to be one of :invoke :ok :fail :info, found {m.group('type')!r}"
                )
            process = _process_of(m.group("process"))
            f, value, timed_out, error = _op_fields(m.group("rest"), path, lineno)
            if type_ == "invoke":
                open_arguments[process] = value
            else:
                argument = open_arguments.pop(process, None)
                if timed_out and type_ in ("info", "fail"):
                    value = argument
                    error = error if error is not None else "timed-out"
            ops.append(Op(index=len(ops), type=type_, process=process, f=f, value=value, error=error))
            lines.append(lineno)
    return History(ops, source=path, lines=lines)
