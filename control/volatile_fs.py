"""A FUSE file system that forgets what was never fsynced: the power-cut model of ``lose-unfsynced``.

    python -m splitbrain.control.volatile_fs DIRECTORY CONTROL_SOCKET [PARENT_PID [NAMESPACE_PID]]

mounts an in-memory copy of DIRECTORY over DIRECTORY itself. Every process sees its writes at once (as a
page cache would show them), but only ``fsync``/``fdatasync`` of a file makes that file's data and
attributes durable, and only ``fsync`` of a directory makes its entries durable (the creates, renames and
unlinks in it), as POSIX promises and no more. ``cut`` on the control socket (one line, one JSON answer)
is the power cut (the nemesis kills the node's processes first): everything not durable is discarded in
place; the kernel caches no names or attributes and drops a file's pages when it is opened again, so a
restarted process reads only the durable state; the answer lists the writes lost, each
``{"file", "offset", "length"}`` (offsets relative to DIRECTORY's files, exact to the byte). ``stop``
unmounts and ends the daemon; so does the death of PARENT_PID (the harness). With NAMESPACE_PID (a
Docker node: its container's first process) the daemon stays on this machine but the mount is made in
that process's mount namespace, over DIRECTORY as the container sees it (the node's data directory is
bind-mounted at the same path): the host never sees the mount, and removing the container ends it.
CONTROL_SOCKET ``@NAME`` is an abstract socket (no file to clean up). Any process can run on it: the
mechanism is the kernel's, so Go, Java and Python programs see the same thing.

    python volatile_fs.py --send CONTROL_SOCKET COMMAND

sends one command and prints the answer (how the harness speaks to a daemon on an SSH host).

It imports only the standard library and mfusepy (libfuse 3, imported only to mount), so it is shipped to
an SSH host as it is, with mfusepy's single file beside it (nemesis/power.py).
Data is kept in 4 KiB blocks; blocks never written are zeros and take no memory (a preallocated log costs
nothing until written), and the durable state shares unchanged blocks with the live one.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

BLOCK = 4096
ROOT = 1
CLONE_NEWNS, MS_NOSUID, MS_NODEV, MNT_DETACH = 0x00020000, 0x2, 0x4, 0x2


@dataclass
class Inode:
    """One file or directory: what processes see now (``live``) or what survived (``durable``)."""

    is_dir: bool
    mode: int
    uid: int = 0
    gid: int = 0
    mtime: int = field(default_factory=time.time_ns)  # ns
    blocks: dict[int, bytes] = field(default_factory=dict)  # files: block number -> BLOCK bytes
    size: int = 0
    entries: dict[str, int] = field(default_factory=dict)   # directories: name -> inode number

    def copy(self) -> Inode:
        return Inode(self.is_dir, self.mode, self.uid, self.gid, self.mtime, dict(self.blocks), self.size,
                     dict(self.entries))


def _changed_span(b: int, old: bytes, new: bytes, size: int) -> tuple[int, int]:
    """The bytes of block ``b`` that differ between ``old`` and ``new``, as file offsets [start, end)."""
    first = next(i for i in range(BLOCK) if old[i] != new[i])
    last = next(i for i in range(BLOCK - 1, -1, -1) if old[i] != new[i])
    return b * BLOCK + first, min(b * BLOCK + last + 1, size)


def _err(code: int) -> OSError:
    return OSError(code, os.strerror(code))


class VolatileFS:
    """The file system's state and operations (mfusepy calls them from several threads: one lock)."""

    def __init__(self, source: str | None = None) -> None:
        self._lock = threading.RLock()
        self.live: dict[int, Inode] = {ROOT: Inode(True, stat.S_IFDIR | 0o755)}
        self.durable: dict[int, Inode] = {}
        self._dirty: dict[int, set[int]] = {}  # inode -> blocks written since its last fsync
        self._next = ROOT + 1
        # Who a new file or directory belongs to: the calling process (the FUSE context once mounted).
        self.caller: Any = lambda: (os.geteuid(), os.getegid())
        if source is not None:
            st = os.stat(source)  # the mount point keeps its owner and mode (PostgreSQL checks its PGDATA's)
            self.live[ROOT] = Inode(True, stat.S_IFDIR | (st.st_mode & 0o7777), st.st_uid, st.st_gid)
            self._load(source, ROOT)
        self.durable = {ino: node.copy() for ino, node in self.live.items()}

    # -- loading and the power cut -----------------------------------------------------------------------
    def _load(self, directory: str, ino: int) -> None:
        for entry in sorted(os.scandir(directory), key=lambda e: e.name):
            st = entry.stat(follow_symlinks=False)
            if entry.is_dir(follow_symlinks=False):
                child = self._new(True, st.st_mode, st.st_uid, st.st_gid)
                self._load(entry.path, child)
            elif entry.is_file(follow_symlinks=False):
                child = self._new(False, st.st_mode, st.st_uid, st.st_gid)
                with open(entry.path, "rb") as f:
                    data = f.read()
                self._write(child, data, 0)
            else:
                continue  # sockets, fifos, links: nothing a data directory needs
            self.live[child].mtime = st.st_mtime_ns
            self.live[ino].entries[entry.name] = child
        self._dirty.clear()

    def cut(self) -> list[dict[str, Any]]:
        """The power cut: back to the durable state; returns the writes lost (file, offset, length)."""
        with self._lock:
            lost = self._lost()
            self.live = {}
            self._revive(ROOT)
            self._dirty.clear()
            return lost

    def _revive(self, ino: int) -> None:
        node = self.durable[ino].copy()
        node.entries = {name: child for name, child in node.entries.items() if child in self.durable}
        self.live[ino] = node
        for child in node.entries.values():
            if child not in self.live:
                self._revive(child)

    def _lost(self) -> list[dict[str, Any]]:
        survivors = self._reachable(self.durable)
        lost = []
        for path, ino in self._paths(self.live, ROOT, ""):
            node = self.live[ino]
            if node.is_dir:
                continue
            if ino not in survivors:
                if node.size:
                    lost.append({"file": path, "offset": 0, "length": node.size, "gone": True})
                continue
            kept = self.durable[ino]
            zero = bytes(BLOCK)
            changed = [b for b in self._dirty.get(ino, ()) if node.blocks.get(b, zero) != kept.blocks.get(b, zero)]
            bigger = max(node.size, kept.size)
            spans = [_changed_span(b, kept.blocks.get(b, bytes(BLOCK)), node.blocks.get(b, bytes(BLOCK)), bigger)
                     for b in changed]
            if kept.size != node.size:
                spans.append((min(kept.size, node.size), bigger))
            if not spans:
                continue
            start, end = min(s for s, _ in spans), max(e for _, e in spans)
            lost.append({"file": path, "offset": start, "length": end - start})
        return lost

    def _reachable(self, table: dict[int, Inode]) -> set[int]:
        seen, todo = set(), [ROOT]
        while todo:
            ino = todo.pop()
            if ino in seen or ino not in table:
                continue
            seen.add(ino)
            todo += table[ino].entries.values()
        return seen

    def _paths(self, table: dict[int, Inode], ino: int, prefix: str):
        for name, child in sorted(table[ino].entries.items()):
            if child in table:
                yield f"{prefix}/{name}", child
                if table[child].is_dir:
                    yield from self._paths(table, child, f"{prefix}/{name}")

    # -- helpers -------------------------------------------------------------------------------------------
    def _new(self, is_dir: bool, mode: int, uid: int = 0, gid: int = 0) -> int:
        ino = self._next
        self._next += 1
        kind = stat.S_IFDIR if is_dir else stat.S_IFREG
        self.live[ino] = Inode(is_dir, kind | (mode & 0o7777), uid, gid)
        return ino

    def _resolve(self, path: str) -> int:
        ino = ROOT
        for part in path.strip("/").split("/") if path.strip("/") else ():
            node = self.live[ino]
            if not node.is_dir or part not in node.entries:
                raise _err(errno.ENOENT)
            ino = node.entries[part]
        return ino

    def _parent(self, path: str) -> tuple[Inode, str]:
        head, _, name = path.rstrip("/").rpartition("/")
        parent = self.live[self._resolve(head or "/")]
        if not parent.is_dir:
            raise _err(errno.ENOTDIR)
        return parent, name

    def _ino(self, path: str | None, fh: int | None) -> int:
        if fh and fh in self.live:
            return fh
        if path is None:
            raise _err(errno.EBADF)
        return self._resolve(path)

    def _write(self, ino: int, data: bytes, offset: int) -> int:
        node = self.live[ino]
        dirty = self._dirty.setdefault(ino, set())
        pos, view = offset, memoryview(data)
        while view:
            b, within = divmod(pos, BLOCK)
            take = min(BLOCK - within, len(view))
            block = bytearray(node.blocks.get(b, bytes(BLOCK)))
            block[within:within + take] = view[:take]
            node.blocks[b] = bytes(block)
            dirty.add(b)
            pos += take
            view = view[take:]
        node.size = max(node.size, offset + len(data))
        node.mtime = time.time_ns()
        return len(data)

    def _resize(self, ino: int, length: int) -> None:
        node = self.live[ino]
        if length < node.size:
            last, within = divmod(length, BLOCK)
            dirty = self._dirty.setdefault(ino, set())
            for b in [b for b in node.blocks if b > last or (b == last and within == 0)]:
                del node.blocks[b]
                dirty.add(b)  # so that an fsync drops it from the durable copy too
            if within and last in node.blocks:
                node.blocks[last] = node.blocks[last][:within] + bytes(BLOCK - within)
                self._dirty.setdefault(ino, set()).add(last)
        node.size = length
        node.mtime = time.time_ns()
        self._dirty.setdefault(ino, set())

    # -- FUSE operations -------------------------------------------------------------------------------------
    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        with self._lock:
            node = self.live[self._ino(path, fh)]
            nlink = 2 + sum(1 for c in node.entries.values() if self.live.get(c, node).is_dir) if node.is_dir else 1
            return {"st_mode": node.mode, "st_nlink": nlink, "st_size": node.size, "st_uid": node.uid,
                    "st_gid": node.gid, "st_mtime": node.mtime, "st_ctime": node.mtime, "st_atime": node.mtime,
                    "st_blocks": (node.size + 511) // 512, "st_blksize": BLOCK}

    def readdir(self, path: str, fh: int) -> list[str]:
        with self._lock:
            node = self.live[self._resolve(path)]
            return [".", "..", *sorted(node.entries)]

    def access(self, path: str, amode: int) -> int:
        with self._lock:
            self._resolve(path)
        return 0

    def mkdir(self, path: str, mode: int) -> int:
        with self._lock:
            parent, name = self._parent(path)
            if name in parent.entries:
                raise _err(errno.EEXIST)
            parent.entries[name] = self._new(True, mode, *self.caller())
            parent.mtime = time.time_ns()
        return 0

    def rmdir(self, path: str) -> int:
        with self._lock:
            parent, name = self._parent(path)
            ino = self._resolve(path)
            if self.live[ino].entries:
                raise _err(errno.ENOTEMPTY)
            del parent.entries[name]
            parent.mtime = time.time_ns()
        return 0

    def create(self, path: str, mode: int, fi: Any = None) -> int:
        with self._lock:
            parent, name = self._parent(path)
            if name in parent.entries:
                ino = parent.entries[name]
                self._resize(ino, 0)
                return ino
            ino = self._new(False, mode, *self.caller())
            parent.entries[name] = ino
            parent.mtime = time.time_ns()
            return ino

    def open(self, path: str, flags: int) -> int:
        with self._lock:
            ino = self._resolve(path)
            if flags & os.O_TRUNC:
                self._resize(ino, 0)
            return ino

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        with self._lock:
            node = self.live[self._ino(path, fh)]
            end = min(node.size, offset + size)
            out = bytearray()
            pos = offset
            while pos < end:
                b, within = divmod(pos, BLOCK)
                take = min(BLOCK - within, end - pos)
                out += node.blocks.get(b, bytes(BLOCK))[within:within + take]
                pos += take
            return bytes(out)

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        with self._lock:
            return self._write(self._ino(path, fh), data, offset)

    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        with self._lock:
            self._resize(self._ino(path, fh), length)
        return 0

    def fallocate(self, path: str, mode: int, offset: int, size: int, fh: int) -> int:
        if mode != 0:
            raise _err(errno.EOPNOTSUPP)
        with self._lock:
            ino = self._ino(path, fh)
            if offset + size > self.live[ino].size:
                self._resize(ino, offset + size)
        return 0

    def fsync(self, path: str, datasync: int, fh: int) -> int:
        with self._lock:
            ino = self._ino(path, fh)
            node, kept = self.live[ino], self.durable.get(ino)
            if kept is None or kept.is_dir != node.is_dir:
                kept = self.durable[ino] = Inode(node.is_dir, node.mode)
            for b in self._dirty.pop(ino, ()):
                if b in node.blocks:
                    kept.blocks[b] = node.blocks[b]
                else:
                    kept.blocks.pop(b, None)
            for b in [b for b in kept.blocks if b * BLOCK >= node.size]:
                del kept.blocks[b]
            kept.size, kept.mode, kept.uid, kept.gid, kept.mtime = node.size, node.mode, node.uid, node.gid, node.mtime
        return 0

    def fsyncdir(self, path: str, datasync: int, fh: int) -> int:
        with self._lock:
            ino = self._resolve(path)
            node = self.live[ino]
            kept = self.durable.setdefault(ino, Inode(True, node.mode))
            kept.entries = dict(node.entries)
            for child in node.entries.values():  # a new child is durable as created: empty until fsynced
                if child not in self.durable:
                    c = self.live[child]
                    self.durable[child] = Inode(c.is_dir, c.mode, c.uid, c.gid, c.mtime)
        return 0

    def unlink(self, path: str) -> int:
        with self._lock:
            parent, name = self._parent(path)
            ino = self._resolve(path)
            if self.live[ino].is_dir:
                raise _err(errno.EISDIR)
            del parent.entries[name]  # the inode stays while it may be open; a cut drops what nothing names
            parent.mtime = time.time_ns()
        return 0

    def rename(self, old: str, new: str) -> int:
        with self._lock:
            src, src_name = self._parent(old)
            ino = self._resolve(old)
            dst, dst_name = self._parent(new)
            existing = dst.entries.get(dst_name)
            if existing is not None and self.live[existing].is_dir and self.live[existing].entries:
                raise _err(errno.ENOTEMPTY)
            del src.entries[src_name]
            dst.entries[dst_name] = ino
            src.mtime = dst.mtime = time.time_ns()
        return 0

    def chmod(self, path: str, mode: int) -> int:
        with self._lock:
            node = self.live[self._resolve(path)]
            node.mode = (node.mode & ~0o7777) | (mode & 0o7777)
        return 0

    def chown(self, path: str, uid: int, gid: int) -> int:
        with self._lock:
            node = self.live[self._resolve(path)]
            node.uid = uid if uid != -1 else node.uid
            node.gid = gid if gid != -1 else node.gid
        return 0

    def utimens(self, path: str, times: tuple[float, float] | None = None) -> int:
        with self._lock:
            self.live[self._resolve(path)].mtime = times[1] if times else time.time_ns()
        return 0

    def statfs(self, path: str) -> dict[str, int]:
        return {"f_bsize": BLOCK, "f_frsize": BLOCK, "f_blocks": 1 << 24, "f_bfree": 1 << 23,
                "f_bavail": 1 << 23, "f_files": 1 << 20, "f_ffree": 1 << 19, "f_namemax": 255}

    def flush(self, path: str, fh: int) -> int:
        return 0

    def release(self, path: str, fh: int) -> int:
        return 0


def _operations(fs: VolatileFS) -> Any:
    """``fs`` as mfusepy Operations (its errors become errnos)."""
    import mfusepy

    class Ops(mfusepy.Operations):
        use_ns = True  # utimens gets nanoseconds

    ops = Ops()
    fs.caller = lambda: mfusepy.fuse_get_context()[:2]
    for name in ("getattr", "readdir", "access", "mkdir", "rmdir", "create", "open", "read", "write",
                 "truncate", "fallocate", "fsync", "fsyncdir", "unlink", "rename", "chmod", "chown", "utimens",
                 "statfs", "flush", "release"):
        setattr(ops, name, _errno_of(getattr(fs, name)))
    return ops


def _errno_of(method: Any) -> Any:
    import mfusepy

    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except KeyError:
            raise mfusepy.FuseOSError(errno.ENOENT) from None
        except OSError as e:
            raise mfusepy.FuseOSError(e.errno or errno.EIO) from None

    return call


def in_mount_namespace(pid: int, call: Any) -> None:
    """Run ``call(libc)`` (a libc call returning 0 or -1) in the mount namespace of process ``pid``.

    setns(CLONE_NEWNS) refuses a process with threads, so a forked child (one thread) joins the namespace,
    makes the call and exits with its errno."""
    libc = ctypes.CDLL(None, use_errno=True)
    namespace = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY)
    try:
        child = os.fork()
        if child == 0:  # pragma: no cover - the child only makes two libc calls and exits
            code = errno.EIO
            try:
                ok = libc.setns(namespace, CLONE_NEWNS) == 0 and call(libc) == 0
                code = 0 if ok else ctypes.get_errno() or errno.EIO
            finally:
                os._exit(code)
        code = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
    finally:
        os.close(namespace)
    if code != 0:
        raise OSError(code, f"{os.strerror(code)} (in the mount namespace of process {pid})")


class Daemon:
    """Mounts ``fs`` on ``mountpoint`` once and serves the control socket; ``cut`` discards in place
    (the mount stays), ``stop`` unmounts and ends the daemon."""

    def __init__(self, mountpoint: str, control: str, parent: int | None = None, namespace_of: int | None = None) -> None:
        self.mountpoint = os.path.abspath(mountpoint)
        self.control = "\0" + control[1:] if control.startswith("@") else os.path.abspath(control)
        self.parent = parent
        self.namespace_of = namespace_of  # a process whose mount namespace gets the mount (None: this one)
        self.fs = VolatileFS(self.mountpoint)
        self._mounted_there = threading.Event()

    def run(self) -> None:
        import mfusepy

        threading.Thread(target=self._serve_control, daemon=True).start()
        if self.parent is not None:
            threading.Thread(target=self._watch_parent, daemon=True).start()
        mountpoint = self.mountpoint if self.namespace_of is None else self._mount_in_namespace()
        # No attribute or name caching in the kernel, and no page cache kept across opens (the default),
        # so after a cut a restarted process reads the durable state, not stale pages.
        # The kernel checks permissions by the files' modes and owners (default_permissions), and when the
        # daemon runs as root, processes of other users may use the mount (PostgreSQL runs as postgres).
        # (In another namespace both are options of the mount(2) call itself.)
        options: dict[str, bool] = {}
        if self.namespace_of is None:
            options = {"default_permissions": True, **({"allow_other": True} if os.geteuid() == 0 else {})}
        mfusepy.FUSE(_operations(self.fs), mountpoint, foreground=True, fsname="splitbrain-volatile",
                     attr_timeout=0, entry_timeout=0, negative_timeout=0, **options)

    def _mount_in_namespace(self) -> str:
        """Mount a FUSE connection opened here in the other namespace; libfuse serves it as /dev/fd/N.
        allow_other: the container's processes may run as any user (postgres, zookeeper)."""
        fuse = os.open("/dev/fuse", os.O_RDWR)
        options = f"fd={fuse},rootmode=40000,user_id=0,group_id=0,allow_other,default_permissions".encode()
        in_mount_namespace(self.namespace_of, lambda libc: libc.mount(
            b"splitbrain-volatile", self.mountpoint.encode(), b"fuse.splitbrain-volatile",
            MS_NOSUID | MS_NODEV, options))
        self._mounted_there.set()
        return f"/dev/fd/{fuse}"

    def _unmount(self, lazy: bool = False) -> None:
        if self.namespace_of is not None:
            in_mount_namespace(self.namespace_of, lambda libc: libc.umount2(self.mountpoint.encode(),
                                                                             MNT_DETACH if lazy else 0))
            return
        cmd = ["fusermount3", "-u", *(["-z"] if lazy else []), self.mountpoint]
        subprocess.run(cmd, check=True, capture_output=True, timeout=30)

    def _watch_parent(self) -> None:
        while os.getppid() == self.parent:
            time.sleep(0.5)
        # the harness is gone: nothing will stop us, and its reaper kills the rest
        try:
            self._unmount(lazy=True)
        except (OSError, subprocess.SubprocessError):
            pass  # already gone (a removed container takes its mount with it)

    def _mounted(self, timeout_s: float = 30.0) -> bool:
        if self.namespace_of is not None:
            return self._mounted_there.wait(timeout_s)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if os.path.ismount(self.mountpoint):
                return True
            time.sleep(0.01)
        return False

    def _serve_control(self) -> None:
        if not self._mounted():
            return
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
            if not self.control.startswith("\0") and os.path.exists(self.control):
                os.unlink(self.control)
            server.bind(self.control)
            server.listen(4)
            while True:
                conn, _ = server.accept()
                with conn, conn.makefile("rw") as stream:
                    command = stream.readline().strip()
                    stream.write(json.dumps(self._command(command)) + "\n")
                    stream.flush()
                if command == "stop":  # answered first: the daemon ends once unmounted
                    try:
                        self._unmount()
                    except (OSError, subprocess.SubprocessError):
                        self._unmount(lazy=True)  # still in use: detach it, it goes once closed
                    return

    def _command(self, command: str) -> dict[str, Any]:
        try:
            if command == "ping":
                return {"ok": True}
            if command == "cut":
                return {"lost": self.fs.cut()}
            if command == "stop":
                return {"ok": True}
        except (OSError, subprocess.SubprocessError) as e:
            return {"error": f"{type(e).__name__}: {e}"}
        return {"error": f"unknown command {command!r}; expected ping, cut or stop"}


def send(control: str, command: str, timeout_s: float = 60.0) -> dict[str, Any]:
    """One command to the daemon at ``control`` (``@NAME``: abstract) and its answer; OSError when it
    cannot be reached or says nothing."""
    address = "\0" + control[1:] if control.startswith("@") else control
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout_s)
        s.connect(address)
        s.sendall(command.encode() + b"\n")
        with s.makefile("r") as stream:
            line = stream.readline()
    if not line:
        raise OSError(f"the FUSE daemon at {control} closed the connection")
    return json.loads(line)


def main(argv: list[str]) -> int:
    if len(argv) == 4 and argv[1] == "--send":
        try:
            print(json.dumps(send(argv[2], argv[3])))
        except OSError as e:
            print(f"cannot reach the FUSE daemon at {argv[2]}: {e}", file=sys.stderr)
            return 1
        return 0
    if len(argv) not in (3, 4, 5):
        print("usage: python -m splitbrain.control.volatile_fs DIRECTORY CONTROL_SOCKET [PARENT_PID [NAMESPACE_PID]]\n"
              "       python -m splitbrain.control.volatile_fs --send CONTROL_SOCKET COMMAND", file=sys.stderr)
        return 3
    parent = int(argv[3]) if len(argv) >= 4 else None
    Daemon(argv[1], argv[2], parent, int(argv[4]) if len(argv) == 5 else None).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
