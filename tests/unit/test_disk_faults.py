"""The disk faults' pure parts: what disk_ops does to a file, and the volatile file system's model of
durability (used without mounting it)."""

from __future__ import annotations

import os
import random

import pytest
from splitbrain.control.errors import ConfigError
from splitbrain.control.target import DataFiles
from splitbrain.control.volatile_fs import VolatileFS, in_mount_namespace
from splitbrain.nemesis import disk_ops
from splitbrain.nemesis.base import NemesisContext
from splitbrain.nemesis.kinds import Corrupt, Disk, LoseUnfsynced, Truncate, parse_kinds
from splitbrain.nemesis.power import PowerNemesis


def _log(tmp_path, data: bytes = bytes(range(256)) * 8):
    (tmp_path / "wal").write_bytes(data)
    return data


def test_corruption_is_seeded_and_restored(tmp_path):
    data = _log(tmp_path)
    request = {"directory": str(tmp_path), "patterns": ["wal"], "mode": "zero", "seed": 7, "max_bytes": 64}
    done = disk_ops.corrupt(request)
    damaged = (tmp_path / "wal").read_bytes()
    assert damaged != data and damaged[done["offset"]:done["offset"] + done["length"]] == bytes(done["length"])
    assert disk_ops.restore({**done, "file": done["file"]})["restored"] is True
    assert (tmp_path / "wal").read_bytes() == data
    assert disk_ops.corrupt(request)["offset"] == done["offset"]  # the same seed, the same place


def test_bitflip_changes_one_bit_and_restore_leaves_rewritten_bytes(tmp_path):
    data = _log(tmp_path)
    done = disk_ops.corrupt({"directory": str(tmp_path), "patterns": ["wal"], "mode": "bitflip", "seed": 1,
                             "max_bytes": 64})
    after = (tmp_path / "wal").read_bytes()
    assert bin(data[done["offset"]] ^ after[done["offset"]]).count("1") == 1
    (tmp_path / "wal").write_bytes(b"rewritten" * 300)
    assert disk_ops.restore(done)["restored"] is False


def test_truncate_cuts_the_newest_log(tmp_path):
    data = _log(tmp_path)
    done = disk_ops.truncate({"directory": str(tmp_path), "patterns": ["wal"], "seed": 3, "max_bytes": 100,
                              "length": 5})
    assert (tmp_path / "wal").read_bytes() == data[:-5] and done["offset"] == len(data) - 5


def test_volatile_fs_keeps_only_what_was_fsynced():
    fs = VolatileFS()
    fs.mkdir("/d", 0o755)
    fs.fsyncdir("/", 0, 0)
    ino = fs.create("/d/log", 0o644)
    fs.write("/d/log", b"a" * 5000, 0, ino)
    fs.fsync("/d/log", 1, ino)
    fs.fsyncdir("/d", 0, 0)
    fs.write("/d/log", b"b" * 10, 5000, ino)
    tmp = fs.create("/d/new", 0o644)
    fs.write("/d/new", b"x", 0, tmp)
    fs.fsync("/d/new", 1, tmp)  # its data is durable, its name is not: the directory was not synced
    lost = fs.cut()
    assert {"file": "/d/log", "offset": 5000, "length": 10} in lost
    assert any(w["file"] == "/d/new" and w.get("gone") for w in lost)
    assert fs.readdir("/d", 0) == [".", "..", "log"]
    assert fs.read("/d/log", 10000, 0, 0) == b"a" * 5000


def test_volatile_fs_rename_is_durable_only_with_its_directory():
    fs = VolatileFS()
    ino = fs.create("/a", 0o644)
    fs.fsync("/a", 0, ino)
    fs.fsyncdir("/", 0, 0)
    fs.rename("/a", "/b")
    fs.cut()
    assert fs.readdir("/", 0) == [".", "..", "a"]


def test_disk_kinds_draw_their_ops_from_the_seed():
    nodes = ["node1", "node2", "node3"]
    for kind in (Corrupt(), Truncate(), LoseUnfsynced(), Disk()):
        a, b = kind.fault(nodes, random.Random(5)), kind.fault(nodes, random.Random(5))
        assert a == b and a[0].f.startswith("start-") and set(a[0].value["nodes"]) <= set(nodes)
    assert parse_kinds("disk,corrupt") == ("disk", "corrupt")
    assert "corrupt" not in parse_kinds("all")


def test_a_call_in_another_mount_namespace_that_fails_names_the_namespace():
    # Failing either way: without root setns refuses, with root the unmount of a non-mount does.
    with pytest.raises(OSError, match=rf"in the mount namespace of process {os.getpid()}"):
        in_mount_namespace(os.getpid(), lambda libc: libc.umount2(b"/nonexistent-splitbrain-mountpoint", 0))


class _Files:
    def data_files(self, test, node):
        return DataFiles("/nonexistent", logs=("wal",))

    def kill(self, test, node):
        raise AssertionError("a refused power nemesis must touch no process")

    def start(self, test, node):
        raise AssertionError("a refused power nemesis must touch no process")


class SSHRemote:  # stands for any remote whose files live on another machine
    node = "node1"


def test_power_cuts_are_refused_in_one_line_on_nodes_of_another_machine():
    ctx = NemesisContext({"node1": SSHRemote()}, {"node1": "10.0.0.1"}, random.Random(1), target=_Files())
    with pytest.raises(ConfigError, match=r"^lose-unfsynced runs on local and Docker nodes .*these nodes are SSHRemote$"):
        PowerNemesis(ctx).setup(None)
