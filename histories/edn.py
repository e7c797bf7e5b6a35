"""Jepsen EDN histories: a hand-written EDN reader (exact file:line errors) and an exporter.

Reading maps EDN onto the plain Python/JSON values the rest of splitbrain uses:

  keyword :read, :a/b      -> "read", "a/b"   (the colon is dropped)
  symbol foo               -> "foo"
  character \\a             -> "a"
  string "x\\n"             -> "x\\n"          (escapes decoded)
  42, 42N, -7              -> int              3.5, 1e3 -> float;  1.5M -> Decimal;  1/3 -> Fraction
  nil, true, false         -> None, True, False
  [..] and (..)            -> list
  {..}                     -> dict (a vector key becomes a tuple, a map key a frozenset of its items)
  #{..}                    -> frozenset when every element is hashable, else list
  #inst "..", #uuid "..", #any.Tag{..}  -> the tagged value itself (a tagged record keeps its map)
  ; comment, commas, #_ discard          -> skipped

Because keywords and strings both become ``str``, the exporter decides which strings go back to
keywords by where they stand (see ``write_edn_history``).
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from decimal import Decimal
from fractions import Fraction
from typing import IO, Any

from splitbrain.histories.errors import HistoryFormatError
from splitbrain.histories.history import History
from splitbrain.histories.op import OP_TYPES, Op

# -- tokenizer ---------------------------------------------------------------------------------------
# One alternation, tried in order at each position; group numbers drive the dispatch in _iter_values.
_TOKEN = re.compile(
    r"""
    [\s,]*(?:;[^\n]*[\s,]*)*                                # skipped: whitespace, commas, comments
    (?:                                                     # most frequent first: it is measurably faster
      ([^\s,\[\](){}"\\;\#][^\s,\[\](){}"\\;]*)             # 1 atom: number, keyword, symbol, nil, ...
    | ([\[({]|\#\{)                                         # 2 open a collection
    | ([\])}])                                              # 3 close a collection
    | ("[^"\\]*(?:\\.[^"\\]*)*")                            # 4 string
    | (")                                                   # 5 a quote that never closes
    | (\#_)                                                 # 6 discard the next value
    | \#\#(Inf|-Inf|NaN)(?=[\s,\[\](){}"\\;]|\Z)              # 7 symbolic float
    | \#([A-Za-z][^\s,\[\](){}"\\;]*)                       # 8 tag: applies to the next value
    | \\(newline|space|tab|return|backspace|formfeed|u[0-9A-Fa-f]{4}|[^\s])  # 9 character, then
      (?=[\s,\[\](){}"\\;]|\Z)                              #   a delimiter (\abc is no character)
    | (.)                                                   # 10 anything else is an error
    )?                                                      # (nothing: trailing whitespace at the end)
    """,
    re.VERBOSE | re.DOTALL,
)

_ATOM, _OPEN, _CLOSE, _STRING, _UNTERMINATED, _DISCARD, _SYMBOLIC, _TAG, _CHAR, _BAD = range(1, 11)

_CLOSER = {"[": "]", "(": ")", "{": "}", "#{": "}"}
_KIND = {"[": "vector", "(": "list", "{": "map", "#{": "set"}
_NAMED_CHARS = {"newline": "\n", "space": " ", "tab": "\t", "return": "\r", "backspace": "\b", "formfeed": "\f"}
_SYMBOLIC_FLOATS = {"Inf": float("inf"), "-Inf": float("-inf"), "NaN": float("nan")}
_STRING_ESCAPE = re.compile(r"\\(u[0-9A-Fa-f]{4}|.)", re.DOTALL)
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "b": "\b", "f": "\f"}

_INT = re.compile(r"[+-]?(0|[1-9][0-9]*)N?")
_FLOAT = re.compile(r"[+-]?[0-9]+(\.[0-9]*)?([eE][+-]?[0-9]+)?M?")
_RATIO = re.compile(r"[+-]?[0-9]+/[0-9]+")
_LEADING_ZERO = re.compile(r"[+-]?0[0-9]")
# A symbol: no leading digit, and a leading +, - or . not followed by a digit; one optional namespace.
_SYMBOL_PART = r"(?:[^\W\d]|[*!?$%&=<>|]|[+\-.](?![0-9]))[\w*!?$%&=<>|+\-.#:']*"
_SYMBOL = re.compile(rf"{_SYMBOL_PART}(?:/{_SYMBOL_PART})?|/")
# Keyword names are looser (Clojure reads :1 and :n1-x): any symbol characters, one optional namespace.
_KEYWORD_NAME = re.compile(r"[\w*!?$%&=<>|+\-.#'][\w*!?$%&=<>|+\-.#:']*(?:/[\w*!?$%&=<>|+\-.#:']+)?")

# Atoms repeat endlessly in histories (:process, :type, small ints): decode each distinct text once.
_ATOM_CACHE: dict[str, Any] = {"nil": None, "true": True, "false": False}
_ATOM_CACHE_LIMIT = 100_000


def _atom_value(text: str) -> Any:
    """The value of a number, keyword, symbol, nil/true/false token; ValueError with the reason if none."""
    first = text[0]
    if first == ":":
        name = text[1:]
        if not _KEYWORD_NAME.fullmatch(name):
            raise ValueError(f"expected a keyword like :read, found {text!r}")
        return name
    if first.isdigit() or (first in "+-" and len(text) > 1 and text[1].isdigit()):
        return _number_value(text)
    if _SYMBOL.fullmatch(text):
        return text
    raise ValueError(f"expected a value, found {text!r}")


def _number_value(text: str) -> int | float | Decimal | Fraction:
    if _INT.fullmatch(text):
        return int(text.rstrip("N"))
    if _RATIO.fullmatch(text):
        numerator, denominator = text.split("/")
        if int(denominator) == 0:
            raise ValueError(f"ratio {text!r} divides by zero")
        return Fraction(int(numerator), int(denominator))
    if _LEADING_ZERO.match(text):
        raise ValueError(f"expected a decimal number, found {text!r} (leading zero: EDN has no octal)")
    if _FLOAT.fullmatch(text):
        if text.endswith("M"):
            body = text[:-1]
            return int(body) if body.lstrip("+-").isdigit() else Decimal(body)
        return float(text)
    raise ValueError(f"expected a number, found {text!r}")


def _string_value(body: str) -> str:
    """Decode the escapes of a string literal's body (without quotes); ValueError names a bad one."""
    if "\\" not in body:
        return body

    def decode(m: re.Match[str]) -> str:
        code = m.group(1)
        if code in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[code]
        if code[0] == "u" and len(code) == 5:
            return chr(int(code[1:], 16))
        raise ValueError(f"unsupported escape \\{code} in string (expected one of \\n \\t \\r \\\" \\\\ \\b \\f \\uXXXX)")

    return _STRING_ESCAPE.sub(decode, body)


def _hashable_key(value: Any) -> Any:
    """A map key or set element made hashable: vectors become tuples, maps frozensets of items."""
    if isinstance(value, list):
        return tuple(_hashable_key(v) for v in value)
    if isinstance(value, dict):
        return frozenset((k, _hashable_key(v)) for k, v in value.items())
    return value


def _set_value(items: list[Any]) -> frozenset[Any] | list[Any]:
    """A frozenset when every element is hashable; else the elements as a list (vectors stay lists,
    so they compare equal to the same vector elsewhere in the history)."""
    try:
        return frozenset(items)
    except TypeError:
        return items


# -- parser ------------------------------------------------------------------------------------------
class _LineIndex:
    """Maps a character offset to its 1-based line (bisect over the newline offsets, found once)."""

    __slots__ = ("_text", "_first_line", "_newlines")

    def __init__(self, text: str, first_line: int) -> None:
        self._text = text
        self._first_line = first_line
        self._newlines: list[int] | None = None  # built on first use: most one-line texts never need it

    def line(self, pos: int) -> int:
        if self._newlines is None:
            self._newlines = [m.start() for m in re.finditer("\n", self._text)]
        return self._first_line + bisect_left(self._newlines, pos)


class _Frame:
    """An open collection: its opening token, where it began, its items so far, pending prefixes."""

    __slots__ = ("opener", "start", "items", "prefixes", "child_starts")

    def __init__(self, opener: str, start: int, track_children: bool) -> None:
        self.opener = opener
        self.start = start
        self.items: list[Any] = []
        self.prefixes: list[tuple[str, str, int]] = []  # ("tag", name, pos) | ("discard", "#_", pos)
        self.child_starts: list[int] | None = [] if track_children else None


def _iter_values(
    text: str,
    file: str | None,
    lines: _LineIndex | None = None,
    track_children: bool = False,
    end_name: str = "the end of the file",
) -> Iterator[tuple[Any, int, int, list[int] | None]]:
    """Top-level EDN values as (value, start offset, end offset, child start offsets).

    ``child_starts`` (when ``track_children``) holds the offset where each element of a top-level
    collection begins, so a history can name the line of each op. Iterative (an explicit stack), so deep
    nesting cannot overflow Python's recursion limit. The hot path (atoms, strings, brackets) is inlined.
    ``end_name`` is what errors call the end of ``text`` ("the end of the line" for one log line).
    """
    if lines is None:
        lines = _LineIndex(text, 1)

    def error(pos: int, message: str) -> HistoryFormatError:
        return HistoryFormatError(file, lines.line(pos), message)

    root = _Frame("", 0, False)  # collects nothing: its completed values are yielded
    stack: list[_Frame] = [root]
    frame = root
    cache = _ATOM_CACHE
    missing = _MISSING

    for m in _TOKEN.finditer(text):
        group = m.lastindex
        if group is None:
            continue  # only whitespace and comments (at the end of the text)
        if group == _ATOM:
            pos = m.start(_ATOM)
            token = m.group(_ATOM)
            value = cache.get(token, missing)
            if value is missing:
                try:
                    value = _atom_value(token)
                except ValueError as e:
                    raise error(pos, str(e)) from None
                if len(cache) < _ATOM_CACHE_LIMIT:
                    cache[token] = value
        elif group == _OPEN:
            opener = m.group(_OPEN)
            frame = _Frame(opener, m.start(_OPEN), track_children and frame is root and opener in "[(")
            stack.append(frame)
            continue
        elif group == _CLOSE:
            closer = m.group(_CLOSE)
            pos = m.start(_CLOSE)
            if frame is root:
                raise error(pos, f"expected a value, found {closer!r} (no collection is open)")
            opener = frame.opener
            if closer != _CLOSER[opener]:
                raise error(
                    pos,
                    f"expected {_CLOSER[opener]!r} to close the {_KIND[opener]} opened at line "
                    f"{lines.line(frame.start)}, found {closer!r}",
                )
            if frame.prefixes:
                raise _dangling_prefix(frame.prefixes[-1], repr(closer), error)
            stack.pop()
            if opener == "{":
                value = _map_value(frame, error)
            elif opener == "#{":
                value = _set_value(frame.items)
            else:
                value = frame.items
            pos = frame.start
            child_starts = frame.child_starts
            frame = stack[-1]
        elif group == _STRING:
            pos = m.start(_STRING)
            try:
                value = _string_value(m.group(_STRING)[1:-1])
            except ValueError as e:
                raise error(pos, str(e)) from None
        elif group == _DISCARD:
            frame.prefixes.append(("discard", "#_", m.start(_DISCARD)))
            continue
        elif group == _TAG:
            frame.prefixes.append(("tag", "#" + m.group(_TAG), m.start(_TAG) - 1))
            continue
        elif group == _CHAR:
            pos = m.start(_CHAR) - 1
            name = m.group(_CHAR)
            if name in _NAMED_CHARS:
                value = _NAMED_CHARS[name]
            elif len(name) == 5 and name[0] == "u":
                value = chr(int(name[1:], 16))
            else:
                value = name
        elif group == _SYMBOLIC:
            pos = m.start(_SYMBOLIC) - 2
            value = _SYMBOLIC_FLOATS[m.group(_SYMBOLIC)]
        elif group == _UNTERMINATED:
            raise error(
                m.start(_UNTERMINATED),
                f"expected a closing '\"' for the string that starts here, found {end_name}",
            )
        else:
            raise error(m.start(_BAD), f"expected a value, found {m.group(_BAD)!r}")

        # A value is complete: pending prefixes apply innermost first (a tag unwraps, a discard drops).
        if frame.prefixes and _discarded(frame.prefixes):
            continue
        if frame is root:
            yield value, pos, m.end(), (child_starts if group == _CLOSE else None)
        else:
            frame.items.append(value)
            if frame.child_starts is not None:
                frame.child_starts.append(pos)

    if frame is not root:
        raise error(
            len(text),
            f"expected {_CLOSER[frame.opener]!r} to close the {_KIND[frame.opener]} opened at line "
            f"{lines.line(frame.start)}, found {end_name}",
        )
    if root.prefixes:
        raise _dangling_prefix(root.prefixes[-1], end_name, error)


_MISSING = object()


def _discarded(prefixes: list[tuple[str, str, int]]) -> bool:
    """Pop the prefixes that apply to a just-completed value; True when one of them discards it."""
    while prefixes:
        kind, _, _ = prefixes.pop()
        if kind == "discard":
            return True
    return False


def _dangling_prefix(prefix: tuple[str, str, int], found: str, error: Any) -> HistoryFormatError:
    _, name, at = prefix
    return error(at, f"expected a value after {name}, found {found}")


def _map_value(frame: _Frame, error: Any) -> dict[Any, Any]:
    items = frame.items
    if len(items) % 2:
        raise error(frame.start, f"expected an even number of forms in the map (key value pairs), found {len(items)}")
    result: dict[Any, Any] = {}
    for i in range(0, len(items), 2):
        key = items[i]
        if type(key) is not str:
            key = _hashable_key(key)
        if key in result:
            raise error(frame.start, f"expected distinct keys in the map, found {key!r} twice")
        result[key] = items[i + 1]
    return result


def parse_edn(text: str, file: str | None = None) -> Iterator[tuple[Any, int]]:
    """Each top-level EDN value of ``text`` with the 1-based line where it starts.

    Raises HistoryFormatError(file, line, ...) at the first malformed token.
    """
    lines = _LineIndex(text, 1)
    for value, start, _, _ in _iter_values(text, file, lines):
        yield value, lines.line(start)


def parse_edn_prefix(text: str, file: str | None, line: int) -> tuple[Any, str] | None:
    """The first EDN value of a one-line ``text`` and the text after it, or None when there is none.

    For log formats that embed an EDN value followed by more fields; errors name ``line``.
    """
    for value, _, end, _ in _iter_values(text, file, _LineIndex(text, line), end_name="the end of the line"):
        return value, text[end:]
    return None


# -- histories ---------------------------------------------------------------------------------------
_OP_FIELDS = ("process", "type", "f", "value", "key", "index", "time", "node", "error")


def _op_from_map(record: Any, position: int, file: str | None, line: int) -> Op:
    """Validate one decoded op map and build its Op (``position`` is the default index).

    Keys other than the op fields (Jepsen adds e.g. :debug) are ignored: they do not change a verdict.
    """
    if not isinstance(record, dict):
        raise HistoryFormatError(file, line, f"expected an op map {{:process .. :type .. :f ..}}, found {_describe(record)}")
    for field in ("process", "type", "f"):
        if field not in record:
            raise HistoryFormatError(file, line, f"expected :{field} in the op map (every op needs :process, :type, :f)")
    t = record["type"]
    if t not in OP_TYPES:
        raise HistoryFormatError(file, line, f"expected :type to be one of :invoke :ok :fail :info, found {t!r}")
    p = record["process"]
    if isinstance(p, bool) or not isinstance(p, (int, str)):
        raise HistoryFormatError(file, line, f"expected :process to be an integer or a keyword such as :nemesis, found {p!r}")
    f = record["f"]
    if not isinstance(f, str):
        raise HistoryFormatError(file, line, f"expected :f to be a keyword, found {f!r}")
    index = record.get("index", position)
    if isinstance(index, bool) or not isinstance(index, int):
        raise HistoryFormatError(file, line, f"expected :index to be an integer, found {index!r}")
    time = record.get("time")
    if time is None:
        time = -1
    if isinstance(time, bool) or not isinstance(time, int):
        raise HistoryFormatError(file, line, f"expected :time to be an integer (ns), found {time!r}")
    node = record.get("node")
    if node is not None and not isinstance(node, str):
        raise HistoryFormatError(file, line, f"expected :node to be a string, found {node!r}")
    return Op(index=index, type=t, process=p, f=f, value=record.get("value"), key=record.get("key"),
              time=time, node=node, error=record.get("error"))


def _describe(value: Any) -> str:
    if isinstance(value, list):
        return "a vector, list or set"
    if isinstance(value, frozenset):
        return "a set"
    if isinstance(value, str):
        return f"{value!r}"
    if value is None:
        return "nil"
    return f"{type(value).__name__} {value!r}"


FAST_PATH = True  # tests turn it off to compare with the general reader

# -- the fast path: histories whose every line is one flat op map ----------------------------------------
# Jepsen, Knossos and Porcupine write histories as one op map per line, inside one vector or not, with
# values that are nil, integers, keywords, plain strings or vectors of those. Such a text is read line by
# line with regexes; anything else (a comment after a map, nesting, escapes, tags, two maps on a line)
# sends the whole text to the general reader above. Both give the same ops (tests/unit/test_edn.py).
_FAST_ATOM = r'(?:nil|true|false|-?(?:0|[1-9][0-9]*)|:[A-Za-z_*!?][\w*!?<>=+.\-]*|"[^"\\\n]*")'
_FAST_VALUE = rf"(?:{_FAST_ATOM}|\[[ ,]*(?:{_FAST_ATOM}(?:[ ,]+{_FAST_ATOM})*)?[ ,]*\])"  # separators between
_FAST_PAIR_TEXT = rf":[A-Za-z_][\w\-]* {_FAST_VALUE}"
_FAST_PAIR = re.compile(rf":([A-Za-z_][\w\-]*) ({_FAST_VALUE})")
_FAST_MAP_LINE = re.compile(
    rf"[ \t]*(\[?)[ \t]*\{{((?:{_FAST_PAIR_TEXT}(?:(?:, ?| ){_FAST_PAIR_TEXT})*)?)\}}[ \t]*(\]?)[ \t]*\r?")
_FAST_ELEMENT = re.compile(_FAST_ATOM)
# Jepsen's own order of the fields, the most common line of all, in one match without a dict.
_FAST_JEPSEN_LINE = re.compile(
    rf"[ \t]*(\[?)[ \t]*\{{:process (-?(?:0|[1-9][0-9]*)), :type :(invoke|ok|fail|info), :f :([A-Za-z_*!?][\w*!?<>=+.\-]*)"
    rf'(?:, :key ("[^"\\\n]*"|-?(?:0|[1-9][0-9]*)))?, :value ({_FAST_VALUE})\}}[ \t]*(\]?)[ \t]*\r?')


def _fast_value(text: str) -> Any:
    if text[0] == "[":
        return [_fast_atom(t) for t in _FAST_ELEMENT.findall(text)]
    return _fast_atom(text)


def _fast_atom(text: str) -> Any:
    if text[0] == '"':
        return text[1:-1]
    value = _ATOM_CACHE.get(text, _ATOM_CACHE)
    if value is _ATOM_CACHE:
        value = _atom_value(text)
        if len(_ATOM_CACHE) < _ATOM_CACHE_LIMIT:
            _ATOM_CACHE[text] = value
    return value


def _fast_history(text: str, file: str | None) -> History | None:
    """The history when every non-blank line (but comment lines) is one flat op map, else None."""
    ops: list[Op] = []
    op_lines: list[int] = []
    opened = closed = False
    match_line = _FAST_MAP_LINE.fullmatch
    match_jepsen = _FAST_JEPSEN_LINE.fullmatch
    pairs = _FAST_PAIR.findall
    cache = _ATOM_CACHE
    for lineno, line in enumerate(text.split("\n"), start=1):
        j = match_jepsen(line)
        if j is not None:
            opener, p, t, f, key, value, closer = j.groups()
            if closed or (opener and ops) or (closer and not opener and not opened):
                return None
            opened = opened or bool(opener)
            closed = bool(closer)
            v = _fast_value(value) if value[0] == "[" else cache.get(value) if value in cache else _fast_atom(value)
            k = None if key is None else key[1:-1] if key[0] == '"' else int(key)
            ops.append(Op(len(ops), t, int(p), f, v, k, -1, None, None))
            op_lines.append(lineno)
            continue
        m = match_line(line)
        if m is None:
            stripped = line.strip()
            if not stripped or stripped[0] == ";":
                continue
            return None
        opener, body, closer = m.groups()
        if closed or (opener and ops) or (closer and not opener and not opened):
            return None
        if opener:
            opened = True
        if closer:
            closed = True
        found = pairs(body)
        record = {k: _fast_value(v) if v[0] == "[" else cache.get(v) if v in cache else _fast_atom(v) for k, v in found}
        if len(record) != len(found):
            return None  # a key twice: the general reader reports it
        t, p, f = record.get("type"), record.get("process"), record.get("f")
        if t in OP_TYPES and type(p) is int and type(f) is str and not ("index" in record or "time" in record
                                                                      or "node" in record):
            ops.append(Op(len(ops), t, p, f, record.get("value"), record.get("key"), -1, None, record.get("error")))
        else:  # the other fields, as the general reader has them
            try:
                ops.append(_op_from_map(record, len(ops), file, lineno))
            except HistoryFormatError:
                return None  # the general reader reports the first error of the whole text
        op_lines.append(lineno)
    if opened and not closed:
        return None
    return History(ops, source=file, lines=op_lines)


def history_from_edn_text(text: str, file: str | None = None) -> History:
    """Parse a Jepsen EDN history: one top-level vector/list of op maps, or a stream of op maps."""
    fast = _fast_history(text, file) if FAST_PATH else None
    if fast is not None:
        return fast
    lines = _LineIndex(text, 1)
    ops: list[Op] = []
    op_lines: list[int] = []
    first_was_collection = False
    for n, (value, start, _, child_starts) in enumerate(_iter_values(text, file, lines, track_children=True)):
        line = lines.line(start)
        if n == 1 and first_was_collection:
            raise HistoryFormatError(
                file, line, "expected a single vector of ops or a stream of op maps, found a second top-level value"
            )
        if n == 0 and child_starts is not None:  # a top-level vector or list (not a set) of ops
            first_was_collection = True
            for element, element_start in zip(value, child_starts, strict=True):
                element_line = lines.line(element_start)
                ops.append(_op_from_map(element, len(ops), file, element_line))
                op_lines.append(element_line)
            continue
        ops.append(_op_from_map(value, len(ops), file, line))
        op_lines.append(line)
    return History(ops, source=file, lines=op_lines)


def read_edn_history(path: str) -> History:
    """Read a Jepsen EDN history file (a vector of op maps, or maps one or many per line)."""
    with open(path, encoding="utf-8-sig") as fh:
        text = fh.read()
    return history_from_edn_text(text, path)


# -- exporter ----------------------------------------------------------------------------------------
# Which strings become keywords again (everything else that is a str is written as a string):
#   - :type always; :f and a :process that is a string (":nemesis") when they are identifier-like
#     (any str that would not read back as the same keyword stays a string, so nothing is lost);
#   - :error when it is an identifier-like string (":timed-out"), or the first element of an error vector
#     whose first element is one ([:temporarily-unavailable nil]), Jepsen's error convention;
#   - in a value that is a list of micro-ops [f k v] with f in MICRO_OP_FS (Elle's and Knossos's txns),
#     the micro-op f, and k when it is an identifier-like string (Knossos multi-register keys :x :y);
#   - dict keys that are identifier-like strings, at any depth.
# A history read from EDN and written back reads back to equal ops; keyword-vs-string differences inside
# other values are not preserved (both read as str), which no checker here can observe.
MICRO_OP_FS = frozenset(("append", "r", "w", "read", "write"))
_IDENTIFIER = re.compile(r"[A-Za-z_*!?<>=][A-Za-z0-9_*!?<>=+.\-]*(?:/[A-Za-z_*!?<>=][A-Za-z0-9_*!?<>=+.\-]*)?")
_IDENTIFIER_NOT_LITERAL = frozenset(("nil", "true", "false"))


def _is_identifier(value: Any) -> bool:
    return isinstance(value, str) and value not in _IDENTIFIER_NOT_LITERAL and _IDENTIFIER.fullmatch(value) is not None


class _Keyword(str):
    """A str the exporter writes as a keyword."""


def _keyword_if_identifier(value: Any) -> Any:
    return _Keyword(value) if _is_identifier(value) else value


def _format_string(s: str) -> str:
    out = s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    if any(ord(c) < 0x20 for c in out):
        out = "".join(c if ord(c) >= 0x20 else f"\\u{ord(c):04x}" for c in out)
    return f'"{out}"'


def format_edn(value: Any) -> str:
    """One value as EDN text (``_Keyword`` strs as keywords, identifier-like dict keys as keywords)."""
    if value is None:
        return "nil"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, _Keyword):
        return ":" + value
    if isinstance(value, str):
        return _format_string(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value:
            return "##NaN"
        if value in (float("inf"), float("-inf")):
            return "##Inf" if value > 0 else "##-Inf"
        return repr(value)
    if isinstance(value, Decimal):
        return f"{value}M"
    if isinstance(value, Fraction):
        return f"{value.numerator}/{value.denominator}"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(format_edn(v) for v in value) + "]"
    if isinstance(value, (set, frozenset)):
        return "#{" + " ".join(sorted(format_edn(v) for v in value)) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{format_edn(_keyword_if_identifier(k))} {format_edn(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as EDN")


def _is_micro_op_list(value: Any) -> bool:
    return (
        isinstance(value, (list, tuple))
        and len(value) > 0
        and all(isinstance(m, (list, tuple)) and len(m) == 3 and isinstance(m[0], str) and m[0] in MICRO_OP_FS for m in value)
    )


def _export_value(value: Any) -> Any:
    if _is_micro_op_list(value):
        return [[_keyword_if_identifier(f), _keyword_if_identifier(k), v] for f, k, v in value]
    return value


def _export_error(error: Any) -> Any:
    if _is_identifier(error):
        return _Keyword(error)
    if isinstance(error, (list, tuple)) and error and _is_identifier(error[0]):
        return [_Keyword(error[0]), *error[1:]]
    return error


def format_op(op: Op) -> str:
    """One op as a Jepsen op map on one line."""
    process = op.process if op.is_client else _keyword_if_identifier(op.process)
    f = _keyword_if_identifier(op.f)
    parts = [f":index {op.index}", f":type :{op.type}", f":process {format_edn(process)}", f":f {format_edn(f)}"]
    if op.key is not None:
        parts.append(f":key {format_edn(op.key)}")
    parts.append(f":value {format_edn(_export_value(op.value))}")
    if op.time >= 0:
        parts.append(f":time {op.time}")
    if op.node is not None:
        parts.append(f":node {format_edn(op.node)}")
    if op.error is not None:
        parts.append(f":error {format_edn(_export_error(op.error))}")
    return "{" + ", ".join(parts) + "}"


def write_edn_history(history: Iterable[Op], path_or_stream: str | IO[str]) -> None:
    """Write a history as a Jepsen EDN vector, one op map per line (readable by Elle and Knossos).

    Strings become keywords where Jepsen expects keywords: :type; :f, a string :process (:nemesis) and
    an :error that are identifier-like; micro-op names (and identifier-like keys) of txn values; and
    identifier-like map keys. Every other str stays a string (the full rule is above MICRO_OP_FS).
    """
    if isinstance(path_or_stream, str):
        with open(path_or_stream, "w", encoding="utf-8") as fh:
            _write_ops(history, fh)
    else:
        _write_ops(history, path_or_stream)


def _write_ops(history: Iterable[Op], stream: IO[str]) -> None:
    stream.write("[")
    for n, op in enumerate(history):
        stream.write(("\n " if n else "") + format_op(op))
    stream.write("]\n")
