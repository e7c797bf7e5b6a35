"""Where each key of a TOML document is: ``key_lines(text) -> {path: line}``.

``tomllib`` parses a document but keeps no positions, and a plan's errors must name the line of the key
that is wrong. This is a small scanner, not a parser: it runs only on text tomllib has already accepted,
so it can be lenient. It follows table headers (``[a.b]``, ``[[a]]`` with the index of each repeated
table), dotted and quoted keys, inline tables (``options = { read = "local" }``) and arrays of them, and
skips strings (all four kinds), comments and the continuation lines of multi-line values.

A path is a tuple of keys and array indexes, as the parsed document is reached:
``("test", 2, "workloads")`` is the key ``workloads`` of the third ``[[test]]``.
"""

from __future__ import annotations

Path = tuple[str | int, ...]

_BARE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.lines: dict[Path, int] = {}
        self.arrays: dict[Path, int] = {}  # array-of-tables path (with indexes of its parents) -> last index

    # -- characters ----------------------------------------------------------------------------------------

    def peek(self, ahead: int = 0) -> str:
        i = self.pos + ahead
        return self.text[i] if i < len(self.text) else ""

    def advance(self, n: int = 1) -> None:
        for _ in range(n):
            if self.pos < len(self.text):
                if self.text[self.pos] == "\n":
                    self.line += 1
                self.pos += 1

    def skip_blank(self, newlines: bool) -> None:
        while True:
            c = self.peek()
            if c in (" ", "\t", "\r") or (newlines and c == "\n"):
                self.advance()
            elif c == "#":
                while self.peek() not in ("\n", ""):
                    self.advance()
            else:
                return

    def skip_string(self) -> str:
        """Past a string at the position; returns its value when it is a one-line string (for keys)."""
        quote = self.peek()
        if self.text.startswith(quote * 3, self.pos):
            self.advance(3)
            while self.pos < len(self.text) and not self.text.startswith(quote * 3, self.pos):
                self.advance(2 if quote == '"' and self.peek() == "\\" else 1)
            self.advance(3)
            while self.peek() == quote:  # up to two quotes may end the content
                self.advance()
            return ""
        self.advance()
        out = []
        while self.peek() not in (quote, "\n", ""):
            if quote == '"' and self.peek() == "\\":
                out.append(self.peek(1))
                self.advance(2)
                continue
            out.append(self.peek())
            self.advance()
        self.advance()
        return "".join(out)

    # -- keys and values -----------------------------------------------------------------------------------

    def key(self) -> tuple[str, ...]:
        parts: list[str] = []
        while True:
            self.skip_blank(False)
            if self.peek() in ('"', "'"):
                parts.append(self.skip_string())
            else:
                start = self.pos
                while self.peek() in _BARE and self.peek():
                    self.advance()
                parts.append(self.text[start:self.pos])
            self.skip_blank(False)
            if self.peek() != ".":
                return tuple(parts)
            self.advance()

    def value(self, path: Path) -> None:
        """Past a value; records the keys of inline tables in it under ``path``."""
        self.skip_blank(False)
        c = self.peek()
        if c in ('"', "'"):
            self.skip_string()
        elif c == "{":
            self.inline_table(path)
        elif c == "[":
            self.array(path)
        else:
            while self.peek() not in (",", "]", "}", "\n", "#", ""):
                self.advance()

    def inline_table(self, path: Path) -> None:
        self.advance()  # {
        while True:
            self.skip_blank(True)
            if self.peek() in ("}", ""):
                self.advance()
                return
            if self.peek() == ",":
                self.advance()
                continue
            line = self.line
            key = self.key()
            self.record(path, key, line)
            self.skip_blank(False)
            if self.peek() == "=":
                self.advance()
            self.value(path + key)

    def array(self, path: Path) -> None:
        self.advance()  # [
        index = 0
        while True:
            self.skip_blank(True)
            if self.peek() in ("]", ""):
                self.advance()
                return
            if self.peek() == ",":
                self.advance()
                index += 1
                continue
            self.lines.setdefault(path + (index,), self.line)
            self.value(path + (index,))

    def record(self, table: Path, keys: tuple[str, ...], line: int) -> None:
        for i in range(1, len(keys) + 1):  # a.b = 1 also places the table a
            self.lines.setdefault(table + keys[:i], line)

    # -- statements ----------------------------------------------------------------------------------------

    def resolve(self, keys: tuple[str, ...]) -> Path:
        """A header's keys with the current index after each array of tables among its prefixes."""
        out: Path = ()
        for key in keys:
            out = out + (key,)
            if out in self.arrays:
                out = out + (self.arrays[out],)
        return out

    def run(self) -> dict[Path, int]:
        table: Path = ()
        while True:
            self.skip_blank(True)
            if not self.peek():
                return self.lines
            line = self.line
            if self.peek() == "[":
                double = self.peek(1) == "["
                self.advance(2 if double else 1)
                keys = self.key()
                self.advance(2 if double else 1)
                if double:
                    parent = self.resolve(keys[:-1]) + (keys[-1],)
                    self.arrays[parent] = self.arrays.get(parent, -1) + 1
                    table = parent + (self.arrays[parent],)
                    self.lines.setdefault(parent, line)
                else:
                    table = self.resolve(keys)
                self.lines.setdefault(table, line)
                continue
            keys = self.key()
            self.record(table, keys, line)
            self.skip_blank(False)
            if self.peek() == "=":
                self.advance()
            self.value(table + keys)
            while self.peek() not in ("\n", ""):  # a comment after the value
                self.advance()


def key_lines(text: str) -> dict[Path, int]:
    """Every key of the document (and each element of its arrays) -> the line it starts on (1-based)."""
    return _Scanner(text).run()


def line_of(lines: dict[Path, int], path: Path) -> int:
    """The line of ``path``, or of its nearest ancestor that has one (1 for the document itself)."""
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return 1
