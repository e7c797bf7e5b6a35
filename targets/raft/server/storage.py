"""The node's durable state: one append-only write-ahead log of Raft entries and hard states.

File ``DATA_DIR/wal``: a sequence of records, each

    length  u32 big-endian   size of the payload
    crc     u32 big-endian   CRC32 of the payload
    hcrc    u32 big-endian   CRC32 of the 8 bytes above (so a damaged length is caught, not trusted)
    payload UTF-8 JSON       ["e", entry] | ["h", hard_state] | ["t", last_kept_index]

``e`` appends one entry (a dict with at least ``index`` and ``term``); ``h`` replaces the hard state;
``t`` drops every entry after ``last_kept_index`` (a new leader replaced a conflicting suffix). One
``save`` writes every record of a Ready in one ``write`` and one ``fsync`` (group commit), so the hard
state and the entries it refers to become durable together.

Recovery reads the records in order. A damaged record at the very end is a torn write (the process
died mid-``save``, before the fsync returned, so nothing that depends on it was ever sent): it is cut off
and logged. Damage anywhere before the tail is corruption: ``StorageCorruptError`` names the file and
the byte offset, and the node refuses to start.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

WAL_FILE = "wal"
_HEADER = struct.Struct(">III")
_LENGTH_AND_CRC = struct.Struct(">II")
# A length beyond this is never written by save(); it can only come from damage.
MAX_RECORD_BYTES = 64 * 1024 * 1024


class StorageCorruptError(Exception):
    """The write-ahead log is damaged before its tail: the node must not start on it."""

    def __init__(self, file: str, offset: int, message: str) -> None:
        self.file = file
        self.offset = offset
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.file}: byte offset {self.offset}: {self.message}"


@dataclass
class Recovered:
    """What the log held when it was opened."""

    hard_state: dict[str, Any] | None = None
    entries: list[dict[str, Any]] = field(default_factory=list)
    torn_bytes: int = 0


def encode_record(payload: Any) -> bytes:
    body = json.dumps(payload, separators=(",", ":")).encode()
    length_and_crc = _LENGTH_AND_CRC.pack(len(body), zlib.crc32(body))
    return length_and_crc + struct.pack(">I", zlib.crc32(length_and_crc)) + body


def records_for_save(
    last_index: int, hard_state: dict[str, Any] | None, entries: Sequence[dict[str, Any]]
) -> list[Any]:
    """The record payloads that make the log hold ``entries`` (replacing any suffix they overlap)."""
    records: list[Any] = []
    if entries:
        first = entries[0]["index"]
        if first > last_index + 1:
            raise ValueError(f"entries start at index {first} but the log ends at {last_index}: a gap")
        if first <= last_index:
            records.append(["t", first - 1])
        for expected, entry in enumerate(entries, start=first):
            if entry["index"] != expected:
                raise ValueError(f"entries are not contiguous: expected index {expected}, got {entry['index']}")
            records.append(["e", entry])
    if hard_state is not None:
        records.append(["h", hard_state])
    return records


def _is_all_zero(data: bytes) -> bool:
    return not data.strip(b"\0")


def scan(data: bytes, file: str, *, check_crc: bool = True) -> tuple[Recovered, int]:
    """Replay the records in ``data``; returns the state and the offset where the intact log ends.

    ``check_crc=False`` is the ``no-crc`` bug: lengths and payloads are trusted as read, so a damaged
    record that still parses is applied as if it had been written so, and one that does not is taken for
    a torn tail (without checksums the two look alike): the log is cut there, with everything after it."""
    state = Recovered()
    offset = 0
    size = len(data)
    while offset < size:
        remaining = size - offset
        if remaining < _HEADER.size:
            break  # torn header
        length, crc, header_crc = _HEADER.unpack_from(data, offset)
        if check_crc and zlib.crc32(data[offset : offset + 8]) != header_crc:
            if _is_all_zero(data[offset:]):
                break  # the file was extended but the write never landed
            raise StorageCorruptError(file, offset, "record header checksum mismatch (damaged length)")
        if length > MAX_RECORD_BYTES:
            if not check_crc:
                break
            raise StorageCorruptError(file, offset, f"record length {length} exceeds the maximum")
        end = offset + _HEADER.size + length
        if end > size:
            break  # torn payload: the header landed, the rest did not
        body = data[offset + _HEADER.size : end]
        if check_crc and zlib.crc32(body) != crc:
            if end == size:
                break  # the last record was cut mid-write
            raise StorageCorruptError(file, offset, "record checksum mismatch")
        try:
            try:
                payload = json.loads(body)
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise StorageCorruptError(file, offset, f"record is not valid JSON ({e})") from None
            _apply_record(state, payload, file, offset)
        except StorageCorruptError:
            if check_crc:
                raise
            break
        offset = end
    return state, offset


def _apply_record(state: Recovered, payload: Any, file: str, offset: int) -> None:
    if not (isinstance(payload, list) and len(payload) == 2 and payload[0] in ("e", "h", "t")):
        raise StorageCorruptError(file, offset, f"unknown record {str(payload)[:80]!r}")
    kind, body = payload
    last_index = state.entries[-1]["index"] if state.entries else 0
    if kind == "e":
        if not isinstance(body, dict) or body.get("index") != last_index + 1:
            got = body.get("index") if isinstance(body, dict) else body
            raise StorageCorruptError(file, offset, f"entry index {got!r} does not follow {last_index}")
        state.entries.append(body)
    elif kind == "h":
        if not isinstance(body, dict):
            raise StorageCorruptError(file, offset, f"hard state must be an object, got {body!r}")
        state.hard_state = body
    else:
        if not isinstance(body, int) or isinstance(body, bool) or not 0 <= body <= last_index:
            raise StorageCorruptError(file, offset, f"truncation to {body!r} outside the log (0..{last_index})")
        # Entries are contiguous from index 1, so index i sits at position i - 1.
        del state.entries[body:]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DurableLog:
    """The write-ahead log of one node. Open with ``DurableLog.open(data_dir)``."""

    def __init__(self, path: Path, fd: int, last_index: int, sync: bool = True, fsync_lies: bool = False) -> None:
        self.path = path
        self._fd = fd
        self.last_index = last_index
        self.sync = sync
        self.fsync_lies = fsync_lies
        self._volatile: list[bytes] = []  # only with sync=False: what a crash now would lose
        self._lock = threading.Lock()  # saves run in a worker thread, small ones on the event loop

    @classmethod
    def open(cls, data_dir: str | os.PathLike[str], *, sync: bool = True, check_crc: bool = True,
             fsync_lies: bool = False) -> tuple[DurableLog, Recovered]:
        """Recover the log in ``data_dir`` (created if missing), cutting off a torn tail.

        Raises ``StorageCorruptError`` when the log is damaged before its tail. ``sync=False`` is the
        ``no-fsync`` bug: ``save`` only buffers in memory and ``flush_volatile`` writes without fsync, so
        a crash loses what was acknowledged since the last flush, as a disk's volatile cache would.
        ``check_crc=False`` is the ``no-crc`` bug (see ``scan``). ``fsync_lies=True`` is the
        ``fsync-lies`` bug: every record is written at once but never fsynced, so a crash of the process
        loses nothing (the kernel has it) and a power cut loses what the disk had not yet stored.
        """
        directory = Path(data_dir)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / WAL_FILE
        created = not path.exists()
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            with open(path, "rb") as f:
                data = f.read()
            recovered, intact_end = scan(data, str(path), check_crc=check_crc)
            if intact_end < len(data):
                recovered.torn_bytes = len(data) - intact_end
                log.warning("%s: truncating a torn tail of %d bytes at byte offset %d",
                            path, recovered.torn_bytes, intact_end)
                os.ftruncate(fd, intact_end)
                os.fsync(fd)
            if created:
                _fsync_dir(directory)
        except BaseException:
            os.close(fd)
            raise
        last_index = recovered.entries[-1]["index"] if recovered.entries else 0
        return cls(path, fd, last_index, sync, fsync_lies), recovered

    def save(self, hard_state: dict[str, Any] | None, entries: Sequence[dict[str, Any]], *,
             fsync: bool = True) -> None:
        """Make ``entries`` (replacing any overlapping suffix) and ``hard_state`` durable, in one fsync.

        ``fsync=False`` only writes: for a change that may be lost in a crash (a newer commit index,
        which the node learns again from its leader); the next fsync makes it durable with the rest.
        """
        records = records_for_save(self.last_index, hard_state, entries)
        if not records:
            return
        data = b"".join(encode_record(r) for r in records)
        with self._lock:
            if entries:
                self.last_index = entries[-1]["index"]
            if not self.sync:
                self._volatile.append(data)
                return
            self._write(data)
            if fsync and not self.fsync_lies:
                os.fdatasync(self._fd)

    def flush_volatile(self) -> None:
        """Write what ``sync=False`` buffered (no fsync). A no-op for a synced log."""
        with self._lock:
            data, self._volatile = b"".join(self._volatile), []
            self._write(data)

    def _write(self, data: bytes) -> None:
        written = 0
        while written < len(data):
            written += os.write(self._fd, data[written:])

    def close(self) -> None:
        """Close the file; buffered records of an unsynced log are written first (a clean stop)."""
        if self._fd >= 0:
            self.flush_volatile()
            os.close(self._fd)
            self._fd = -1
