"""Node log excerpts: the lines each node logged around each fault and around the failure.

History times are ns after a wall-clock instant the interpreter logs into harness.log; log lines carry
wall-clock stamps in their own formats (the Raft store's ISO stamps, etcd's, ZooKeeper's log4j, nginx's).
A stamp without a zone is taken as this machine's local time, which is what local and Docker nodes
write; hosts reached over SSH with another zone will be off by the difference. Lines without a stamp
belong to the stamped line before them (a traceback).
"""

from __future__ import annotations

import bisect
import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

BEFORE_S, AFTER_S = 1.0, 2.0       # around each event
MAX_LINES_PER_EXCERPT = 40
MAX_EVENTS = 40
MAX_LINE_CHARS = 400
TAIL_LINES = 20                    # without a clock anchor: the end of each log
MAX_SCAN_BYTES = 64 << 20          # a log past this is excerpted from its first 64 MiB only

_ISO = re.compile(r"(\d{4})[-/](\d\d)[-/](\d\d)[T ](\d\d):(\d\d):(\d\d)(?:[.,](\d{1,9}))?\s?(Z|[+-]\d\d:?\d\d)?")
_CLF = re.compile(r"(\d\d)/([A-Z][a-z]{2})/(\d{4}):(\d\d):(\d\d):(\d\d)(?: ([+-]\d{4}))?")  # nginx access log
_MONTHS = {m: i for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), start=1)}


@dataclass(frozen=True)
class Event:
    label: str
    time_ns: int                   # history time


@dataclass
class Excerpt:
    title: str
    lines: list[tuple[int | None, str]]  # (line number, text); number None: an event, where it happened
    left_out: int = 0


@dataclass
class NodeLog:
    node: str
    path: str                      # relative to the run directory, for the link
    size: int
    excerpts: list[Excerpt] = field(default_factory=list)
    note: str = ""


def _zone(text: str | None) -> dt.tzinfo | None:
    if text is None:
        return None
    if text == "Z":
        return dt.UTC
    sign = 1 if text[0] == "+" else -1
    digits = text[1:].replace(":", "")
    return dt.timezone(sign * dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:4])))


def line_time(line: str) -> float | None:
    """The wall-clock stamp near the start of a log line, as a POSIX time; None without one."""
    head = line[:80]
    m = _ISO.search(head)
    if m:
        y, mo, d, h, mi, s, frac, zone = m.groups()
        micro = int((frac or "0").ljust(6, "0")[:6])
        when = dt.datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), micro, tzinfo=_zone(zone))
    else:
        m = _CLF.search(head)
        if not m or m.group(2) not in _MONTHS:
            return None
        d, mon, y, h, mi, s, zone = m.groups()
        when = dt.datetime(int(y), _MONTHS[mon], int(d), int(h), int(mi), int(s), tzinfo=_zone(zone))
    try:
        return when.timestamp()  # naive: this machine's local time
    except (OverflowError, OSError, ValueError):
        return None


Window = tuple[float, float, list[tuple[float, str]]]  # wall-clock start, end, and the events in it


def _windows(events: Sequence[Event], zero: float) -> list[Window]:
    """Merged wall-clock windows around the events, each with its events (wall time, label)."""
    raw = sorted((zero + e.time_ns / 1e9 - BEFORE_S, zero + e.time_ns / 1e9 + AFTER_S, zero + e.time_ns / 1e9, e.label)
                 for e in events[:MAX_EVENTS])
    merged: list[Window] = []
    for start, end, at, label in raw:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]), merged[-1][2] + [(at, label)])
        else:
            merged.append((start, end, [(at, label)]))
    return merged


def _read_lines(path: Path) -> list[str]:
    with open(path, encoding="utf-8", errors="replace") as fh:
        text = fh.read(MAX_SCAN_BYTES)
    return text.splitlines()


def excerpt_log(path: Path, windows: list[Window], zero: float) -> list[Excerpt]:
    """The lines of ``path`` stamped inside each window, with the window's events put among them where
    they happened (a line without a stamp goes with the stamped line before it)."""
    if not windows:
        return []
    found: list[list[tuple[int, str, float]]] = [[] for _ in windows]
    left_out = [0] * len(windows)
    starts = [start for start, _, _ in windows]  # merged: sorted and disjoint
    current: float | None = None
    for number, text in enumerate(_read_lines(path), start=1):
        stamp = line_time(text)
        if stamp is not None:
            current = stamp
        if current is None:
            continue
        k = bisect.bisect_right(starts, current) - 1
        if k >= 0 and current <= windows[k][1]:
            if len(found[k]) < MAX_LINES_PER_EXCERPT:
                found[k].append((number, text[:MAX_LINE_CHARS], current))
            else:
                left_out[k] += 1
    out = []
    for (start, end, events), lines, more in zip(windows, found, left_out, strict=True):
        if not lines:
            continue
        merged: list[tuple[int | None, str]] = []
        pending = sorted(events)
        for number, text, stamp in lines:
            while pending and pending[0][0] <= stamp:
                at, label = pending.pop(0)
                merged.append((None, f"{at - zero:.3f} s  {label}"))
            merged.append((number, text))
        merged += [(None, f"{at - zero:.3f} s  {label}") for at, label in pending]
        title = (f"{start - zero:.1f} s to {end - zero:.1f} s into the run: {len(events)} "
                 + ("event" if len(events) == 1 else "events"))
        out.append(Excerpt(title, merged, more))
    return out


def node_log_files(run_dir: Path) -> list[tuple[str, Path]]:
    """(node, file) of every log under nodes/, and harness.log as the node "harness"."""
    found = []
    nodes = run_dir / "nodes"
    if nodes.is_dir():
        for node_dir in sorted(p for p in nodes.iterdir() if p.is_dir() and not p.is_symlink()):
            found += [(node_dir.name, f) for f in sorted(node_dir.iterdir()) if f.is_file() and not f.is_symlink()]
    if (run_dir / "harness.log").is_file():
        found.append(("harness", run_dir / "harness.log"))
    return found


def node_logs(run_dir: Path, events: Sequence[Event], time_zero: dt.datetime | None) -> list[NodeLog]:
    """Each node log, linked, with the lines around the events (or its last lines, without a clock)."""
    windows = _windows(events, time_zero.timestamp()) if time_zero is not None else []
    out = []
    for node, path in node_log_files(run_dir):
        try:
            size = path.stat().st_size
            log = NodeLog(node, str(path.relative_to(run_dir)), size)
            if time_zero is None:
                lines = _read_lines(path)
                start = max(0, len(lines) - TAIL_LINES)
                log.excerpts = [Excerpt("the end of the log (no clock anchor in harness.log)",
                                        [(start + i + 1, t[:MAX_LINE_CHARS]) for i, t in enumerate(lines[start:])])]
            else:
                log.excerpts = excerpt_log(path, windows, time_zero.timestamp())
                if size > MAX_SCAN_BYTES:
                    log.note = f"only the first {MAX_SCAN_BYTES >> 20} MiB were searched"
        except OSError as e:
            log = NodeLog(node, str(path.relative_to(run_dir)), 0, note=f"cannot be read: {e}")
        out.append(log)
    return out
