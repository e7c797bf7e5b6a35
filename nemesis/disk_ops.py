"""What the disk faults do to a node's files, run ON the node: ``python3 -c SOURCE REQUEST_JSON``.

This module imports only the standard library, so its source runs unchanged through any Remote (a local
node's namespace, a container, an SSH host) with whatever ``python3`` the node has; it prints one JSON
object. Every choice (which file, where, how much) comes from the request's ``seed``, so the same seed and
the same files give the same damage; what was done is returned with the file, offset and length, and for
corruption the bytes before and after, so the fault can be taken back.

Requests (``op`` and its fields):
- ``corrupt``: ``directory``, ``patterns`` (globs relative to it), ``mode`` bitflip | zero | copy,
  ``seed``, ``max_bytes``: one change in one of the non-empty matching files; ``offset`` and ``length``,
  when given, say where instead of the seed (a hand-written schedule aims at a place).
- ``truncate``: ``directory``, ``patterns``, ``seed``, ``max_bytes``: the newest matching file (by
  modification time, then name) that holds data loses 1..max_bytes bytes of its tail (a torn write);
  ``length`` says how many instead.

Preallocated files (etcd's WAL segments, ZooKeeper's and PostgreSQL's logs: zeros written ahead of the
data, at least 4 KiB of them at the end) are damaged where their data is, not in the zeros: the seed's
offsets fall before the last non-zero byte, and a torn write zeroes the last bytes of the data (the
file keeps its length, as a power cut leaves a preallocated file) instead of shortening the file.
- ``restore``: ``file``, ``offset``, ``original``, ``written`` (hex): put the original bytes back if
  the file still holds what the corruption wrote there (else it was rewritten since: leave it).
"""

from __future__ import annotations

import glob
import json
import os
import random
import sys
from typing import Any

MODES = ("bitflip", "zero", "copy")
PREALLOCATED_ZEROS = 4096  # a file ending in at least this many zero bytes was filled ahead of its data
SCAN_BYTES = 1 << 20


class DiskOpError(Exception):
    """The request cannot be carried out (no such file, a bad request): one line for the history."""


def matching_files(directory: str, patterns: list[str]) -> list[tuple[str, int, float]]:
    """(path, size, mtime) of the regular files under ``directory`` matching ``patterns``, by path."""
    found: dict[str, tuple[str, int, float]] = {}
    for pattern in patterns:
        for path in glob.glob(os.path.join(directory, pattern), recursive=True):
            if os.path.isfile(path) and not os.path.islink(path):
                st = os.stat(path)
                found[path] = (path, st.st_size, st.st_mtime)
    return [found[p] for p in sorted(found)]


def written_end(path: str, size: int) -> int:
    """Where the file's data ends: its size, or for a preallocated file the end of its last non-zero byte
    (0: nothing but zeros)."""
    end = size
    with open(path, "rb") as f:
        while end > 0:
            start = max(0, end - SCAN_BYTES)
            f.seek(start)
            data = f.read(end - start).rstrip(b"\0")
            if data:
                end = start + len(data)
                break
            end = start
    return end if size - end >= PREALLOCATED_ZEROS else size


def _with_data(directory: str, patterns: list[str]) -> list[tuple[str, int, float, int]]:
    """(path, size, mtime, end of its data) of the matching files that hold any."""
    found = [(path, size, mtime, written_end(path, size)) for path, size, mtime in matching_files(directory, patterns)
             if size > 0]
    return [f for f in found if f[3] > 0]


def _copy_source(rng: random.Random, span: int, offset: int, length: int) -> int:
    """A start in [0, span - length] whose chunk does not overlap [offset, offset + length)."""
    below = max(0, min(offset - length, span - length) + 1)  # starts 0 .. offset - length
    above_from = offset + length
    above = max(0, span - length - above_from + 1)  # starts offset + length .. span - length
    if below + above == 0:
        return 0
    pick = rng.randrange(below + above)
    return pick if pick < below else above_from + pick - below


def _write_at(path: str, offset: int, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, data, offset)
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_at(path: str, offset: int, length: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


def corrupt(request: dict[str, Any]) -> dict[str, Any]:
    mode = request["mode"]
    if mode not in MODES:
        raise DiskOpError(f"unknown corruption mode {mode!r}; expected one of {', '.join(MODES)}")
    files = _with_data(request["directory"], request["patterns"])
    if not files:
        raise DiskOpError(f"no data file that holds data matches {request['patterns']} in {request['directory']}")
    rng = random.Random(request["seed"])
    path, size, _, span = rng.choice(files)
    if mode == "bitflip":
        offset, length = rng.randrange(span), 1
        if request.get("offset") is not None:
            offset = min(int(request["offset"]), size - 1)
        original = _read_at(path, offset, 1)
        written = bytes([original[0] ^ (1 << rng.randrange(8))])
        source = None
    else:
        length = rng.randint(1, max(1, min(span // 2 if mode == "copy" else span, request["max_bytes"])))
        if request.get("length") is not None:
            length = max(1, min(int(request["length"]), size // 2 if mode == "copy" else size))
        offset = rng.randrange(max(1, span - length + 1))
        if request.get("offset") is not None:
            offset = min(int(request["offset"]), size - length)
        original = _read_at(path, offset, length)
        if mode == "zero":
            written, source = bytes(length), None
        else:  # a chunk of the same file from elsewhere, as a misdirected write leaves it
            source = _copy_source(rng, max(span, min(size, offset + length)), offset, length)
            written = _read_at(path, source, length)
    _write_at(path, offset, written)
    done = {"file": path, "offset": offset, "length": length, "mode": mode, "size": size,
            "original": original.hex(), "written": written.hex()}
    if source is not None:
        done["from"] = source
    return done


def truncate(request: dict[str, Any]) -> dict[str, Any]:
    files = _with_data(request["directory"], request["patterns"])
    if not files:
        raise DiskOpError(f"no log file that holds data matches {request['patterns']} in {request['directory']}")
    path, size, _, span = max(files, key=lambda f: (f[2], f[0]))
    rng = random.Random(request["seed"])
    cut = rng.randint(1, max(1, min(span, request["max_bytes"])))
    if request.get("length") is not None:
        cut = max(1, min(int(request["length"]), span))
    done = {"file": path, "offset": span - cut, "length": cut, "mode": "truncate", "size": size}
    if span < size:  # preallocated: the torn bytes are zeros again and the length stays
        _write_at(path, span - cut, bytes(cut))
        return {**done, "preallocated": True}
    fd = os.open(path, os.O_WRONLY)
    try:
        os.ftruncate(fd, size - cut)
        os.fsync(fd)
    finally:
        os.close(fd)
    return done


def restore(request: dict[str, Any]) -> dict[str, Any]:
    path, offset = request["file"], request["offset"]
    original, written = bytes.fromhex(request["original"]), bytes.fromhex(request["written"])
    if not os.path.isfile(path):
        return {"file": path, "offset": offset, "restored": False, "why": "the file is gone"}
    if _read_at(path, offset, len(written)) != written:
        return {"file": path, "offset": offset, "restored": False, "why": "rewritten since"}
    _write_at(path, offset, original)
    return {"file": path, "offset": offset, "length": len(original), "restored": True}


OPS = {"corrupt": corrupt, "truncate": truncate, "restore": restore}


def main(argv: list[str]) -> int:
    try:
        request = json.loads(argv[1])
        done = OPS[request["op"]](request)
    except (DiskOpError, OSError, KeyError, ValueError, IndexError) as e:
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
        return 1
    print(json.dumps(done))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
