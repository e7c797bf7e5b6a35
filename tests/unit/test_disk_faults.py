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


def test_volatile_fs_keeps_the_owner_and_mode_of_its_directory_and_gives_new_files_to_their_creator(tmp_path):
    """PostgreSQL refuses a PGDATA that is not its own and 0700, and runs as another user than the daemon."""
    source = tmp_path / "pgdata"
    source.mkdir(mode=0o700)
    (source / "PG_VERSION").write_text("15\n")
    if os.geteuid() == 0:
        os.chown(source / "PG_VERSION", 1234, 1234)
    fs = VolatileFS(str(source))
    root = fs.getattr("/")
    assert (root["st_mode"] & 0o7777, root["st_uid"], root["st_gid"]) == (0o700, os.geteuid(), os.getegid())
    if os.geteuid() == 0:
        assert fs.getattr("/PG_VERSION")["st_uid"] == 1234
    fs.caller = lambda: (999, 998)  # what the FUSE context names once mounted
    ino = fs.create("/new", 0o600)
    fs.mkdir("/dir", 0o700)
    assert [(fs.getattr(p)["st_uid"], fs.getattr(p)["st_gid"]) for p in ("/new", "/dir")] == [(999, 998)] * 2
    assert fs.getattr("/new", ino)["st_mode"] & 0o7777 == 0o600


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


def _preallocated(tmp_path, data: bytes = bytes(range(1, 256)) * 40, size: int = 1 << 20):
    """A log as etcd, ZooKeeper and PostgreSQL keep theirs: its data, then zeros up to a fixed size."""
    (tmp_path / "wal").write_bytes(data + bytes(size - len(data)))
    return data


@pytest.mark.parametrize("mode", ["bitflip", "zero", "copy"])
def test_corruption_of_a_preallocated_log_lands_in_its_data_not_its_zeros(tmp_path, mode):
    data = _preallocated(tmp_path)
    for seed in range(20):
        done = disk_ops.corrupt({"directory": str(tmp_path), "patterns": ["wal"], "mode": mode, "seed": seed,
                                 "max_bytes": 64})
        assert done["offset"] + done["length"] <= len(data), done
        if mode == "copy":
            assert done["from"] + done["length"] <= len(data) and abs(done["from"] - done["offset"]) >= done["length"]
        assert disk_ops.restore(done)["restored"] is True or done["original"] == done["written"]


@pytest.mark.timeout(60)
def test_copy_in_a_large_file_never_overlaps(tmp_path):
    """The source used to be drawn from a list of every possible start: 64 M of them in an etcd segment."""
    (tmp_path / "wal").write_bytes(os.urandom(1 << 16) * 1024)  # 64 MiB of data
    done = disk_ops.corrupt({"directory": str(tmp_path), "patterns": ["wal"], "mode": "copy", "seed": 5,
                             "max_bytes": 512})
    assert abs(done["from"] - done["offset"]) >= done["length"]
    assert (tmp_path / "wal").read_bytes()[done["offset"]:done["offset"] + done["length"]] == bytes.fromhex(done["written"])


def test_a_torn_write_of_a_preallocated_log_zeroes_the_end_of_its_data_and_keeps_its_length(tmp_path):
    data = _preallocated(tmp_path)
    done = disk_ops.truncate({"directory": str(tmp_path), "patterns": ["wal"], "seed": 3, "max_bytes": 100,
                              "length": 7})
    after = (tmp_path / "wal").read_bytes()
    assert len(after) == 1 << 20 and done["preallocated"] is True
    assert (done["offset"], done["length"]) == (len(data) - 7, 7)
    assert after[:len(data) - 7] == data[:-7] and not any(after[len(data) - 7:])


def test_a_log_of_nothing_but_zeros_is_passed_over_for_one_that_holds_data(tmp_path):
    data = _preallocated(tmp_path)
    (tmp_path / "wal.next").write_bytes(bytes(1 << 20))  # the next segment, made ahead of its first write
    os.utime(tmp_path / "wal", (1, 1))
    done = disk_ops.truncate({"directory": str(tmp_path), "patterns": ["wal*"], "seed": 3, "max_bytes": 100})
    assert done["file"] == str(tmp_path / "wal") and done["offset"] + done["length"] == len(data)


class _Files:
    def data_files(self, test, node):
        return DataFiles("/nonexistent", logs=("wal",))

    def kill(self, test, node):
        raise AssertionError("a refused power nemesis must touch no process")

    def start(self, test, node):
        raise AssertionError("a refused power nemesis must touch no process")


class HostWithoutFuse:  # a node on another machine (an SSH host) that has python3 but no FUSE
    node = "node1"

    def __init__(self) -> None:
        self.commands: list[list[str]] = []

    def exec(self, cmd, *, stdin=None, timeout=None):
        from splitbrain.control.remote import ExecResult

        self.commands.append(list(cmd))
        return ExecResult(0, "/dev/fuse\nlibfuse 3\n", "")


def test_power_cuts_on_a_host_without_fuse_are_refused_in_one_line_before_anything_stops():
    host = HostWithoutFuse()
    ctx = NemesisContext({"node1": host}, {"node1": "10.0.0.1"}, random.Random(1), target=_Files())
    with pytest.raises(ConfigError) as refused:
        PowerNemesis(ctx).setup(None)
    assert str(refused.value) == ("lose-unfsynced on node1: the host lacks /dev/fuse, libfuse 3 "
                                  "(Debian: apt-get install python3 fuse3)")
    assert len(host.commands) == 1  # only the probe: nothing uploaded, spawned or stopped
