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
  modification time, then name) loses 1..max_bytes bytes of its tail (a torn write); ``length`` says how
  many instead.
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
    files = [f for f in matching_files(request["directory"], request["patterns"]) if f[1] > 0]
    if not files:
        raise DiskOpError(f"no non-empty data file matches {request['patterns']} in {request['directory']}")
    rng = random.Random(request["seed"])
    path, size, _ = rng.choice(files)
    if mode == "bitflip":
        offset, length = rng.randrange(size), 1
        if request.get("offset") is not None:
            offset = min(int(request["offset"]), size - 1)
        original = _read_at(path, offset, 1)
        written = bytes([original[0] ^ (1 << rng.randrange(8))])
        source = None
    else:
        length = rng.randint(1, max(1, min(size // 2 if mode == "copy" else size, request["max_bytes"])))
        if request.get("length") is not None:
            length = max(1, min(int(request["length"]), size // 2 if mode == "copy" else size))
        offset = rng.randrange(size - length + 1)
        if request.get("offset") is not None:
            offset = min(int(request["offset"]), size - length)
        original = _read_at(path, offset, length)
        if mode == "zero":
            written, source = bytes(length), None
        else:  # a chunk of the same file from elsewhere, as a misdirected write leaves it
            choices = [s for s in range(size - length + 1) if abs(s - offset) >= length] or [0]
            source = rng.choice(choices)
            written = _read_at(path, source, length)
    _write_at(path, offset, written)
    done = {"file": path, "offset": offset, "length": length, "mode": mode, "size": size,
            "original": original.hex(), "written": written.hex()}
    if source is not None:
        done["from"] = source
    return done


def truncate(request: dict[str, Any]) -> dict[str, Any]:
    files = [f for f in matching_files(request["directory"], request["patterns"]) if f[1] > 0]
    if not files:
        raise DiskOpError(f"no non-empty log file matches {request['patterns']} in {request['directory']}")
    path, size, _ = max(files, key=lambda f: (f[2], f[0]))
    rng = random.Random(request["seed"])
    cut = rng.randint(1, max(1, min(size, request["max_bytes"])))
    if request.get("length") is not None:
        cut = max(1, min(int(request["length"]), size))
    fd = os.open(path, os.O_WRONLY)
    try:
        os.ftruncate(fd, size - cut)
        os.fsync(fd)
    finally:
        os.close(fd)
    return {"file": path, "offset": size - cut, "length": cut, "mode": "truncate", "size": size}


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
