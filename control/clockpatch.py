"""Per-process wall-clock skew for any x86_64 Linux program, without touching the host clock.

The technique is Chaos Mesh's TimeChaos idea, done with ctypes:

1. The target is started under ptrace (the child calls ``PTRACE_TRACEME`` and then ``execve``), so it
   stops right after the exec of the real binary, before its first instruction.
2. The parent finds ``[vdso]`` in ``/proc/PID/maps`` and reads the vDSO image from ``/proc/PID/mem``.
3. Into the spare bytes at the end of the vDSO mapping (past every loaded segment, so nothing uses them)
   it writes a small blob: the offset slot, the addresses of the original functions, and three stubs
   (hand-assembled below) that call the original ``__vdso_clock_gettime`` / ``__vdso_gettimeofday`` and
   add the offset for CLOCK_REALTIME, CLOCK_REALTIME_COARSE and CLOCK_TAI (and for ``time()``).
4. It points the vDSO's dynamic symbols (``__vdso_clock_gettime`` and its alias ``clock_gettime``, the
   same for ``gettimeofday`` and ``time``) at the stubs. glibc's loader and Go's runtime look the vDSO
   functions up by these symbols when the program starts -- after this patch -- so every later call
   goes through a stub. The original code stays intact, so monotonic clocks keep their fast path and
   are never skewed (a wall-clock skew must not disturb timeouts measured with CLOCK_MONOTONIC).
5. ``PTRACE_DETACH``: the program runs normally, nothing stays attached.

The offset is one signed 64-bit count of nanoseconds in the patched page; ``set_offset`` changes it at
any time with one aligned 8-byte write through ``/proc/PID/mem`` (root, or a tracer-capable user).
Writes to ``/proc/PID/mem`` go through the kernel's forced-write path, which copies the private vDSO
page on write: only this one process sees the change.

Limits (all documented in the API below):

- x86_64 only. Root (or CAP_SYS_PTRACE) is needed to write another process's memory later.
- The patch is made at the exec of ``argv[0]``. A wrapper that execs the real program later (``ip netns
  exec``, ``sudo``, a shell script that ends with ``exec java ...``, pyenv shims) loses it, because every
  exec maps a fresh vDSO. That is why ``spawn_skewed`` enters a network namespace itself (``netns=``)
  instead of going through ``ip netns exec``. A ``#!`` script whose interpreter runs it directly is fine
  (the kernel loads the interpreter within the same exec).
- Threads share the patched vDSO (one address space). A child made with ``fork`` inherits a copy of the
  patched page with the offset of that moment, but later ``set_offset`` calls do not reach it; a child
  that execs gets a fresh, unpatched vDSO.
- Programs that make the raw ``clock_gettime`` system call themselves (no vDSO) are not skewed.

When the vDSO patch cannot work here (not x86_64, no ptrace), ``libfaketime`` is the fallback:
``spawn_faketime`` starts a program with it, the offset in a file it re-reads about once a second.
Python and Java honour it; Go programs do not (Go reads the vDSO directly); and it moves the monotonic
clock too (Debian's 0.9.10 breaks sleeps otherwise). ``probe`` says which one is usable, and
``SkewedProcess.mechanism`` which one a process got.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import shutil
import signal
import struct
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

__all__ = [
    "ClockPatchError",
    "SkewedProcess",
    "VdsoLayout",
    "faketime_env",
    "faketime_library",
    "offset_of",
    "patch_blob",
    "probe",
    "set_offset",
    "spawn_faketime",
    "spawn_skewed",
    "vdso_layout",
]

CLONE_NEWNET = 0x40000000
PTRACE_TRACEME = 0
PTRACE_CONT = 7
PTRACE_DETACH = 17
PTRACE_SETOPTIONS = 0x4200
PTRACE_O_EXITKILL = 0x100000
NETNS_DIR = Path("/var/run/netns")

# -- The blob written into the vDSO --------------------------------------------------------------------
#
# Layout (offsets from the start of the blob, which is 16-byte aligned):
#    0  int64  offset_ns        the skew, changed at run time by set_offset
#    8  uint64 orig_clock_gettime   absolute address of the original __vdso_clock_gettime
#   16  uint64 orig_gettimeofday    absolute address of the original __vdso_gettimeofday
#   24  8 bytes MAGIC            identifies a patched vDSO, checked before every later write
#   32  clock_gettime stub, then gettimeofday stub, then time stub
#
# The code is position-independent: it reaches the slot and the two pointers RIP-relatively, so the
# same bytes work wherever the blob lands. Assembled with GNU as (Intel syntax) and checked with objdump;
# every stub keeps the stack 16-byte aligned at its call and uses no red zone.
# Integer arithmetic: total = sec * 1e9 + nsec + offset, then sec, nsec = divmod(total, 1e9) with a
# non-negative nsec (idiv truncates towards zero, so a negative remainder is folded back).

OFFSET_SLOT = 0
ORIG_CLOCK_GETTIME_SLOT = 8
ORIG_GETTIMEOFDAY_SLOT = 16
MAGIC_SLOT = 24
MAGIC = b"SBCLOCK1"

_CLOCK_GETTIME_STUB = (  # int clock_gettime(clockid_t clk /*edi*/, struct timespec *ts /*rsi*/)
    "57"  # push rdi
    "56"  # push rsi
    "4883ec08"  # sub rsp, 8                      ; align the stack for the call
    "ff15dcffffff"  # call [rip -> orig_clock_gettime]
    "4883c408"  # add rsp, 8
    "5e"  # pop rsi
    "5f"  # pop rdi
    "85c0"  # test eax, eax                  ; an error: return it unchanged
    "7544"  # jne ret
    "83ff00"  # cmp edi, 0                     ; CLOCK_REALTIME
    "740a"  # je skew
    "83ff05"  # cmp edi, 5                     ; CLOCK_REALTIME_COARSE
    "7405"  # je skew
    "83ff0b"  # cmp edi, 11                    ; CLOCK_TAI
    "7535"  # jne ret                        ; every other clock: untouched
    "488b06"  # skew: mov rax, [rsi]           ; tv_sec
    "4869c000ca9a3b"  # imul rax, rax, 1000000000
    "48034608"  # add rax, [rsi + 8]             ; + tv_nsec
    "480305a6ffffff"  # add rax, [rip -> offset_ns]
    "48c7c100ca9a3b"  # mov rcx, 1000000000
    "4899"  # cqo
    "48f7f9"  # idiv rcx                       ; rax = sec, rdx = nsec
    "4885d2"  # test rdx, rdx
    "7906"  # jns store
    "4801ca"  # add rdx, rcx
    "48ffc8"  # dec rax
    "488906"  # store: mov [rsi], rax
    "48895608"  # mov [rsi + 8], rdx
    "31c0"  # xor eax, eax
    "c3"  # ret
)
_GETTIMEOFDAY_STUB = (  # int gettimeofday(struct timeval *tv /*rdi*/, struct timezone *tz /*rsi*/)
    "57"  # push rdi
    "56"  # push rsi
    "4883ec08"  # sub rsp, 8
    "ff1589ffffff"  # call [rip -> orig_gettimeofday]
    "4883c408"  # add rsp, 8
    "5e"  # pop rsi
    "5f"  # pop rdi
    "85c0"  # test eax, eax
    "754e"  # jne ret
    "4885ff"  # test rdi, rdi                  ; tv may be NULL (only tz wanted)
    "7449"  # je ret
    "488b07"  # mov rax, [rdi]                 ; tv_sec
    "4869c000ca9a3b"  # imul rax, rax, 1000000000
    "48694f08e8030000"  # imul rcx, [rdi + 8], 1000       ; tv_usec in ns
    "4801c8"  # add rax, rcx
    "4803054effffff"  # add rax, [rip -> offset_ns]
    "48c7c100ca9a3b"  # mov rcx, 1000000000
    "4899"  # cqo
    "48f7f9"  # idiv rcx
    "4885d2"  # test rdx, rdx
    "7906"  # jns store
    "4801ca"  # add rdx, rcx
    "48ffc8"  # dec rax
    "488907"  # store: mov [rdi], rax
    "4889d0"  # mov rax, rdx
    "31d2"  # xor edx, edx
    "b9e8030000"  # mov ecx, 1000
    "48f7f1"  # div rcx                        ; ns -> us
    "48894708"  # mov [rdi + 8], rax
    "31c0"  # xor eax, eax
    "c3"  # ret
)
_TIME_STUB = (  # time_t time(time_t *tloc /*rdi*/), from the original clock_gettime(CLOCK_REALTIME)
    "57"  # push rdi
    "4883ec10"  # sub rsp, 16                     ; a struct timespec on the stack
    "31ff"  # xor edi, edi                   ; CLOCK_REALTIME
    "4889e6"  # mov rsi, rsp
    "ff1518ffffff"  # call [rip -> orig_clock_gettime]
    "488b0424"  # mov rax, [rsp]
    "4869c000ca9a3b"  # imul rax, rax, 1000000000
    "4803442408"  # add rax, [rsp + 8]
    "480305f9feffff"  # add rax, [rip -> offset_ns]
    "48c7c100ca9a3b"  # mov rcx, 1000000000
    "4899"  # cqo
    "48f7f9"  # idiv rcx
    "4885d2"  # test rdx, rdx
    "7903"  # jns done                       ; floor, not truncation, for negative times
    "48ffc8"  # dec rax
    "4883c410"  # done: add rsp, 16
    "5f"  # pop rdi
    "4885ff"  # test rdi, rdi
    "7403"  # je ret
    "488907"  # mov [rdi], rax
    "c3"  # ret
)

CLOCK_GETTIME_ENTRY = 32
GETTIMEOFDAY_ENTRY = CLOCK_GETTIME_ENTRY + len(_CLOCK_GETTIME_STUB) // 2
TIME_ENTRY = GETTIMEOFDAY_ENTRY + len(_GETTIMEOFDAY_STUB) // 2
_CODE = bytes.fromhex(_CLOCK_GETTIME_STUB + _GETTIMEOFDAY_STUB + _TIME_STUB)
BLOB_SIZE = CLOCK_GETTIME_ENTRY + len(_CODE)


class ClockPatchError(Exception):
    """The clock of a process cannot be skewed (or no longer can): says which process and why."""


def patch_blob(offset_ns: int, orig_clock_gettime: int, orig_gettimeofday: int) -> bytes:
    """The bytes written into the vDSO: data slots, magic, then the three stubs (layout above)."""
    header = struct.pack("<qQQ", offset_ns, orig_clock_gettime, orig_gettimeofday) + MAGIC
    return header + _CODE


# -- Reading the vDSO's ELF image ----------------------------------------------------------------------

PT_LOAD = 1
PT_DYNAMIC = 2
DT_NULL, DT_HASH, DT_STRTAB, DT_SYMTAB = 0, 4, 5, 6
DT_GNU_HASH = 0x6FFFFEF5

# Each patched symbol: its names (the __vdso_ one and the glibc-style alias) and the stub it points to.
PATCHED_FUNCTIONS: dict[str, tuple[tuple[str, ...], int]] = {
    "clock_gettime": (("__vdso_clock_gettime", "clock_gettime"), CLOCK_GETTIME_ENTRY),
    "gettimeofday": (("__vdso_gettimeofday", "gettimeofday"), GETTIMEOFDAY_ENTRY),
    "time": (("__vdso_time", "time"), TIME_ENTRY),
}


@dataclass(frozen=True)
class VdsoLayout:
    """Where things are in one vDSO image (offsets into the image, not addresses).

    ``symbol_value_offsets`` maps each dynamic symbol name we patch to the image offset of its
    ``st_value`` field; ``functions`` maps it to the function's image offset. ``vaddr_delta`` converts
    an image offset to the vaddr stored in ``st_value`` (vaddr = offset - delta). ``blob_offset`` is
    where the blob fits: past every loaded segment, 16-byte aligned, inside the mapping.
    """

    symbol_value_offsets: Mapping[str, int]
    functions: Mapping[str, int]
    vaddr_delta: int
    blob_offset: int


def _elf_header(image: bytes) -> tuple[int, int, int]:
    if len(image) < 64 or image[:4] != b"\x7fELF":
        raise ClockPatchError("the vDSO image is not an ELF file")
    if image[4] != 2 or image[5] != 1:
        raise ClockPatchError("the vDSO is not 64-bit little-endian ELF")
    (machine,) = struct.unpack_from("<H", image, 18)
    if machine != 62:
        raise ClockPatchError(f"the vDSO is not x86_64 (e_machine {machine})")
    (phoff,) = struct.unpack_from("<Q", image, 32)
    phentsize, phnum = struct.unpack_from("<HH", image, 54)
    return phoff, phentsize, phnum


def _program_headers(image: bytes) -> list[tuple[int, int, int, int]]:
    """(p_type, p_offset, p_vaddr, p_filesz) of each program header."""
    phoff, phentsize, phnum = _elf_header(image)
    headers = []
    for i in range(phnum):
        start = phoff + i * phentsize
        if start + 56 > len(image):
            raise ClockPatchError("the vDSO's program headers run past its image")
        p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz = struct.unpack_from("<IIQQQQ", image, start)
        headers.append((p_type, p_offset, p_vaddr, p_filesz))
    return headers


def _dynamic_entries(image: bytes, offset: int, size: int) -> dict[int, int]:
    entries: dict[int, int] = {}
    for pos in range(offset, min(offset + size, len(image) - 15), 16):
        tag, value = struct.unpack_from("<qQ", image, pos)
        if tag == DT_NULL:
            break
        entries.setdefault(tag, value)
    return entries


def _symbol_count(image: bytes, dynamic: Mapping[int, int], delta: int) -> int:
    """How many entries the dynamic symbol table has: DT_HASH's nchain, else a walk of DT_GNU_HASH."""
    if DT_HASH in dynamic:
        return struct.unpack_from("<II", image, dynamic[DT_HASH] + delta)[1]
    if DT_GNU_HASH not in dynamic:
        raise ClockPatchError("the vDSO has neither DT_HASH nor DT_GNU_HASH")
    table = dynamic[DT_GNU_HASH] + delta
    nbuckets, symoffset, bloom_size, _shift = struct.unpack_from("<IIII", image, table)
    buckets_at = table + 16 + 8 * bloom_size
    buckets = struct.unpack_from(f"<{nbuckets}I", image, buckets_at)
    last = max(buckets, default=0)
    if last < symoffset:
        return symoffset
    chain_at = buckets_at + 4 * nbuckets
    while not struct.unpack_from("<I", image, chain_at + 4 * (last - symoffset))[0] & 1:
        last += 1
    return last + 1


def _c_string(image: bytes, start: int) -> str:
    end = image.find(b"\0", start)
    return image[start : end if end >= 0 else len(image)].decode("ascii", "replace")


def vdso_layout(image: bytes) -> VdsoLayout:
    """Parse a vDSO image: the symbols to redirect and the spare room for the blob.

    Raises ClockPatchError when the image is not an x86_64 ELF, lacks one of the three functions, or
    has no room for the blob.
    """
    try:
        return _vdso_layout(image)
    except struct.error as e:
        raise ClockPatchError(f"the vDSO image is malformed: {e}") from None


def _vdso_layout(image: bytes) -> VdsoLayout:
    headers = _program_headers(image)
    loads = [h for h in headers if h[0] == PT_LOAD]
    dynamics = [h for h in headers if h[0] == PT_DYNAMIC]
    if not loads or not dynamics:
        raise ClockPatchError("the vDSO has no PT_LOAD or no PT_DYNAMIC segment")
    delta = loads[0][1] - loads[0][2]  # image offset = vaddr + delta
    dynamic = _dynamic_entries(image, dynamics[0][1], dynamics[0][3])
    if DT_SYMTAB not in dynamic or DT_STRTAB not in dynamic:
        raise ClockPatchError("the vDSO's dynamic section lacks DT_SYMTAB or DT_STRTAB")
    symtab, strtab = dynamic[DT_SYMTAB] + delta, dynamic[DT_STRTAB] + delta
    wanted = {name for names, _entry in PATCHED_FUNCTIONS.values() for name in names}
    value_offsets: dict[str, int] = {}
    functions: dict[str, int] = {}
    for index in range(1, _symbol_count(image, dynamic, delta)):
        entry = symtab + 24 * index
        if entry + 24 > len(image):
            raise ClockPatchError("the vDSO's symbol table runs past its image")
        st_name, _info, _other, _shndx, st_value = struct.unpack_from("<IBBHQ", image, entry)
        name = _c_string(image, strtab + st_name)
        if name in wanted and st_value:
            value_offsets[name] = entry + 8
            functions[name] = st_value + delta
    for function, (names, _entry) in PATCHED_FUNCTIONS.items():
        if names[0] not in functions:
            # Not skewing one of them would let the real time leak through it: refuse instead.
            raise ClockPatchError(f"the vDSO does not export {names[0]} (needed to skew {function})")
    loaded_end = max(offset + filesz for _t, offset, _v, filesz in loads)
    blob_offset = (len(image) - BLOB_SIZE) & ~15
    if blob_offset < loaded_end:
        raise ClockPatchError(
            f"no room in the vDSO for the clock stubs ({BLOB_SIZE} bytes needed past its last segment "
            f"at {loaded_end:#x} of {len(image):#x})"
        )
    return VdsoLayout(value_offsets, functions, delta, blob_offset)


def vdso_patches(image: bytes, base: int, offset_ns: int) -> tuple[int, list[tuple[int, bytes]]]:
    """What to write into a vDSO mapped at ``base``: (slot address, [(address, bytes)]).

    The blob comes first in the list and the symbol redirections after it, so a symbol never points at
    code that is not there yet.
    """
    layout = vdso_layout(image)
    orig = {fn: base + layout.functions[names[0]] for fn, (names, _e) in PATCHED_FUNCTIONS.items()}
    blob = patch_blob(offset_ns, orig["clock_gettime"], orig["gettimeofday"])
    writes = [(base + layout.blob_offset, blob)]
    for names, entry in PATCHED_FUNCTIONS.values():
        stub_vaddr = layout.blob_offset + entry - layout.vaddr_delta
        for name in names:
            if name in layout.symbol_value_offsets:
                writes.append((base + layout.symbol_value_offsets[name], struct.pack("<Q", stub_vaddr)))
    return base + layout.blob_offset + OFFSET_SLOT, writes


# -- Talking to a process ------------------------------------------------------------------------------


def vdso_range(pid: int | str) -> tuple[int, int]:
    """(start, end) of the ``[vdso]`` mapping of a process (``"self"`` for this one)."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError as e:
        raise ClockPatchError(f"process {pid}: cannot read its memory map: {e.strerror}") from None
    for line in maps.splitlines():
        if line.endswith("[vdso]"):
            start, end = line.split()[0].split("-")
            return int(start, 16), int(end, 16)
    raise ClockPatchError(f"process {pid} has no [vdso] mapping")


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    libc.ptrace.restype = ctypes.c_long
    libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.setns.restype = ctypes.c_int
    return libc


def _ptrace(libc: ctypes.CDLL, request: int, pid: int, data: int = 0) -> None:
    if libc.ptrace(request, pid, None, ctypes.c_void_p(data)) == -1:
        err = ctypes.get_errno()
        raise ClockPatchError(f"process {pid}: ptrace({request}) failed: {os.strerror(err)}")


def offset_of(pid: int, slot_address: int) -> int:
    """The offset (ns) a patched process currently adds to its wall clock."""
    fd = _open_patched_mem(pid, slot_address, os.O_RDONLY)
    try:
        return struct.unpack("<q", os.pread(fd, 8, slot_address + OFFSET_SLOT))[0]
    finally:
        os.close(fd)


def set_offset(pid: int, slot_address: int, offset_ns: int) -> None:
    """Set the wall-clock offset of a process patched by ``spawn_skewed``: one aligned 8-byte write.

    Safe against pid reuse: the write goes through the same ``/proc/PID/mem`` descriptor (bound to one
    address space) that first checked the blob's magic, so a different process with the same pid is
    never written to. Raises ClockPatchError when the process is gone or has exec'd since.
    """
    if not -(2**62) < offset_ns < 2**62:
        raise ValueError(f"offset {offset_ns} ns is out of range")
    fd = _open_patched_mem(pid, slot_address, os.O_RDWR)
    try:
        written = os.pwrite(fd, struct.pack("<q", offset_ns), slot_address + OFFSET_SLOT)
    except OSError as e:
        raise ClockPatchError(f"process {pid}: cannot write its clock offset: {e.strerror}") from None
    finally:
        os.close(fd)
    if written != 8:
        raise ClockPatchError(f"process {pid}: short write of its clock offset (it is exiting?)")


def _open_patched_mem(pid: int, slot_address: int, flags: int) -> int:
    try:
        fd = os.open(f"/proc/{pid}/mem", flags | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ClockPatchError(f"process {pid} is gone") from None
    except OSError as e:
        raise ClockPatchError(f"process {pid}: cannot open its memory: {e.strerror}") from None
    try:
        header = os.pread(fd, 32, slot_address)
    except OSError:
        header = b""
    if len(header) != 32 or header[MAGIC_SLOT : MAGIC_SLOT + 8] != MAGIC:
        os.close(fd)
        raise ClockPatchError(
            f"process {pid} has no patched vDSO at {slot_address:#x} (it exited, or exec'd another program)"
        )
    return fd


def _patch_stopped(pid: int, offset_ns: int) -> int:
    """Patch the vDSO of a stopped tracee; returns the slot address."""
    start, end = vdso_range(pid)
    fd = os.open(f"/proc/{pid}/mem", os.O_RDWR | os.O_CLOEXEC)
    try:
        image = os.pread(fd, end - start, start)
        if len(image) != end - start:
            raise ClockPatchError(f"process {pid}: short read of its vDSO")
        slot, writes = vdso_patches(image, start, offset_ns)
        for address, data in writes:
            if os.pwrite(fd, data, address) != len(data):
                raise ClockPatchError(f"process {pid}: short write into its vDSO at {address:#x}")
    except OSError as e:
        raise ClockPatchError(f"process {pid}: cannot patch its vDSO: {e.strerror}") from None
    finally:
        os.close(fd)
    return slot


# -- Starting a skewed process -------------------------------------------------------------------------


@dataclass
class SkewedProcess:
    """A process whose wall clock can be skewed. ``mechanism`` is "vdso" or "faketime".

    vdso: ``slot_address`` is where its offset lives. faketime: ``faketime_file`` is the file libfaketime
    re-reads; offsets are then whole microseconds and reach the process within its cache interval.
    """

    pid: int
    slot_address: int
    popen: subprocess.Popen[Any]
    mechanism: str = "vdso"
    faketime_file: str | None = None

    def set_offset(self, offset_ns: int) -> None:
        if self.mechanism == "faketime":
            assert self.faketime_file is not None
            if self.popen.poll() is not None:
                raise ClockPatchError(f"process {self.pid} is gone")
            _write_faketime_file(self.faketime_file, offset_ns)
        else:
            set_offset(self.pid, self.slot_address, offset_ns)

    def offset(self) -> int:
        if self.mechanism == "faketime":
            assert self.faketime_file is not None
            return _read_faketime_file(self.faketime_file)
        return offset_of(self.pid, self.slot_address)


def _netns_fd(netns: str) -> int:
    if "/" in netns or netns in ("", ".", ".."):
        raise ClockPatchError(f"bad network namespace name {netns!r}")
    try:
        return os.open(NETNS_DIR / netns, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise ClockPatchError(
            f"network namespace {netns}: cannot open {NETNS_DIR / netns}: {e.strerror}"
        ) from None


def _child_setup(
    libc: ctypes.CDLL, preexec_fn: Callable[[], None] | None, *, trace: bool
) -> Callable[[int | None], None]:
    """What the forked child does before execve: the caller's hook, enter the netns, ask to be traced.

    Runs between fork and exec, so it only makes plain system calls (via ctypes). The caller's hook runs
    first, still outside the namespace (e.g. to join a cgroup whose files the namespace would hide).
    """

    def setup(netns_fd: int | None) -> None:
        if preexec_fn is not None:
            preexec_fn()
        if netns_fd is not None and libc.setns(netns_fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns into the network namespace failed")
        if trace and libc.ptrace(PTRACE_TRACEME, 0, None, None) != 0:
            raise OSError(ctypes.get_errno(), "PTRACE_TRACEME failed")

    return setup


def _wait_exec_stop(libc: ctypes.CDLL, pid: int) -> None:
    """Wait for the SIGTRAP that ptrace delivers at execve; pass any earlier signal on."""
    while True:
        _, status = os.waitpid(pid, 0)
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            raise ClockPatchError(f"process {pid} ended before it could be patched (status {status:#x})")
        if os.WIFSTOPPED(status):
            sig = os.WSTOPSIG(status)
            if sig == signal.SIGTRAP:
                return
            _ptrace(libc, PTRACE_CONT, pid, sig)


# Programs that exec another program: the patch would skew them, not the program they start.
EXEC_WRAPPERS = frozenset(
    ("ip", "env", "sudo", "su", "nsenter", "unshare", "chroot", "setsid", "nice", "ionice", "timeout",
     "taskset", "stdbuf", "chrt", "runuser", "setpriv", "xargs", "exec", "nohup", "faketime")
)  # fmt: skip
SHELLS = frozenset(("sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "busybox"))


def exec_wrapper_reason(argv: Sequence[str], resolved: str | None) -> str | None:
    """Why ``argv`` would not skew the program it means to run (None when it would).

    ``resolved`` is ``argv[0]`` found on PATH. A wrapper binary (``ip netns exec``) or a shell script
    (pyenv shims, ``zkServer.sh``) execs the real program later, which then gets a fresh, unpatched vDSO.
    A script run by a non-shell interpreter (``#!/usr/bin/python3``) is fine: the kernel loads the
    interpreter within the same exec.
    """
    if not argv:
        return "nothing to run: argv is empty"
    name = os.path.basename(argv[0])
    if name in EXEC_WRAPPERS:
        return (
            f"{argv[0]} execs another program, which would run with the real clock: start the program "
            "itself (spawn_skewed enters a network namespace with netns=)"
        )
    if resolved is None:
        return None  # subprocess reports a missing program with its usual error
    try:
        with open(resolved, "rb") as program:
            head = program.read(256)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    words = head[2:].split(b"\n", 1)[0].split()
    interpreters = [os.path.basename(w.decode(errors="replace")) for w in words[:2]]
    if interpreters and interpreters[0] == "env":
        interpreters = interpreters[1:]
    if interpreters and interpreters[0] in SHELLS:
        return (
            f"{resolved} is a {interpreters[0]} script: the programs it runs get a fresh, unskewed vDSO; "
            "start the real program instead (or pass allow_wrapper=True to skew the shell itself)"
        )
    return None


def spawn_skewed(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    stdin: int | IO[Any] | None = subprocess.DEVNULL,
    stdout: int | IO[Any] | None = None,
    stderr: int | IO[Any] | None = None,
    start_new_session: bool = False,
    process_group: int | None = None,
    preexec_fn: Callable[[], None] | None = None,
    netns: str | None = None,
    offset_ns: int = 0,
    allow_wrapper: bool = False,
) -> SkewedProcess:
    """Start ``argv`` with a patched vDSO whose wall clock runs ``offset_ns`` ahead (negative: behind).

    ``argv[0]`` must be the real program (searched on PATH like subprocess does): the patch is made at
    its exec. ``netns`` names a namespace under /var/run/netns that the child enters itself (setns)
    before its exec -- the equivalent of ``ip netns exec NAME``, minus its /etc/netns bind mounts and
    /sys remount -- because a wrapper that execs the program would lose the patch. ``preexec_fn`` runs in
    the child before it enters the namespace. Raises ClockPatchError (the child is then killed) when the
    patch cannot be made; OSError as subprocess does when the program cannot be started.

    A skew that silently misses its target is worse than none (a test would pass that should fail), so
    ``argv[0]`` being a known exec wrapper (``ip``, ``env``, ``sudo``, ...) or a shell script is refused
    unless ``allow_wrapper`` says the wrapper itself is what should be skewed.
    """
    if platform.machine() != "x86_64":
        raise ClockPatchError(f"the vDSO patch needs x86_64, this is {platform.machine()}")
    if not allow_wrapper:
        search_path = (env or os.environ).get("PATH", os.defpath)
        reason = exec_wrapper_reason(argv, shutil.which(argv[0], path=search_path) if argv else None)
        if reason is not None:
            raise ClockPatchError(reason)
    libc = _libc()
    # Only the thread that forks may trace the child: this whole function runs in the caller's thread.
    popen = _popen_in_netns(
        libc,
        argv,
        netns,
        _child_setup(libc, preexec_fn, trace=True),
        env=dict(env) if env is not None else None,
        cwd=cwd,
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        start_new_session=start_new_session,
        process_group=process_group,
    )
    try:
        _wait_exec_stop(libc, popen.pid)
        # Should this process die before it detaches, the kernel kills the tracee rather than letting it
        # run unpatched, with the real clock.
        _ptrace(libc, PTRACE_SETOPTIONS, popen.pid, PTRACE_O_EXITKILL)
        slot = _patch_stopped(popen.pid, offset_ns)
        _ptrace(libc, PTRACE_DETACH, popen.pid, 0)
    except BaseException:
        _kill_unpatched(popen)
        raise
    return SkewedProcess(popen.pid, slot, popen)


def _popen_in_netns(
    libc: ctypes.CDLL,
    argv: Sequence[str],
    netns: str | None,
    setup: Callable[[int | None], None],
    **popen_options: Any,
) -> subprocess.Popen[Any]:
    netns_fd = _netns_fd(netns) if netns is not None else None
    try:
        return subprocess.Popen(list(argv), preexec_fn=lambda: setup(netns_fd), **popen_options)
    finally:
        if netns_fd is not None:
            os.close(netns_fd)


def _kill_unpatched(popen: subprocess.Popen[Any]) -> None:
    # A process left running with the real clock would make the skew silently absent: never leave one.
    try:
        os.kill(popen.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        popen.wait(timeout=5)
    except (subprocess.TimeoutExpired, ChildProcessError):
        pass


# -- The libfaketime fallback --------------------------------------------------------------------------

FAKETIME_LIBRARY_PATHS = (
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
)


def faketime_library() -> str | None:
    """The path of libfaketime if it is installed (Debian package ``libfaketime``)."""
    return next((p for p in FAKETIME_LIBRARY_PATHS if os.path.exists(p)), None)


def faketime_spec(offset_ns: int) -> str:
    """libfaketime's relative offset syntax, in seconds with microsecond precision: '+3600.000000'."""
    sign = "-" if offset_ns < 0 else "+"
    micros = abs(offset_ns) // 1000
    return f"{sign}{micros // 1_000_000}.{micros % 1_000_000:06d}"


def _write_faketime_file(path: str, offset_ns: int) -> None:
    # Written to a temporary name and renamed, so libfaketime never reads half a line.
    tmp = f"{path}.tmp"
    try:
        Path(tmp).write_text(faketime_spec(offset_ns) + "\n")
        os.replace(tmp, path)
    except OSError as e:
        raise ClockPatchError(f"cannot write the libfaketime offset file {path}: {e.strerror}") from None


def _read_faketime_file(path: str) -> int:
    text = Path(path).read_text().strip()
    seconds, _, fraction = text.lstrip("+-").partition(".")
    ns = int(seconds) * 1_000_000_000 + int((fraction + "000000")[:6]) * 1000
    return -ns if text.startswith("-") else ns


def faketime_env(offset_file: str, offset_ns: int = 0) -> dict[str, str]:
    """Environment additions that make a (non-Go) program read its wall clock through libfaketime.

    The offset lives in ``offset_file`` (written here), re-read at most once a second, so it can change
    at run time. Monotonic clocks are faked with the same offset (Debian's libfaketime 0.9.10 breaks
    sleeps when told not to fake them), so a bump also moves the program's monotonic clock.
    """
    library = faketime_library()
    if library is None:
        raise ClockPatchError("libfaketime is not installed (Debian package libfaketime)")
    _write_faketime_file(offset_file, offset_ns)
    return {
        "LD_PRELOAD": library,
        "FAKETIME_TIMESTAMP_FILE": offset_file,
        "FAKETIME_CACHE_DURATION": "1",
    }


def spawn_faketime(
    argv: Sequence[str],
    offset_file: str,
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    stdin: int | IO[Any] | None = subprocess.DEVNULL,
    stdout: int | IO[Any] | None = None,
    stderr: int | IO[Any] | None = None,
    start_new_session: bool = False,
    process_group: int | None = None,
    preexec_fn: Callable[[], None] | None = None,
    netns: str | None = None,
    offset_ns: int = 0,
) -> SkewedProcess:
    """The fallback: start ``argv`` under libfaketime, its offset in ``offset_file``. Same options as
    ``spawn_skewed``. Go programs ignore it (they read the vDSO directly): use it where ``probe`` says
    the vDSO patch does not work, and only for targets that call the C library."""
    base_env = dict(env) if env is not None else dict(os.environ)
    popen = _popen_in_netns(
        _libc(),
        argv,
        netns,
        _child_setup(_libc(), preexec_fn, trace=False),
        env={**base_env, **faketime_env(offset_file, offset_ns)},
        cwd=cwd,
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        start_new_session=start_new_session,
        process_group=process_group,
    )
    return SkewedProcess(popen.pid, 0, popen, mechanism="faketime", faketime_file=offset_file)


# -- Which mechanism works here ------------------------------------------------------------------------


def probe() -> str:
    """Return "vdso" when the vDSO patch works on this machine (tried on a real process), else why not.

    When it does not, the reason ends with whether the libfaketime fallback is available.
    """
    reason = _vdso_unusable_reason()
    if reason is None:
        return "vdso"
    fallback = "libfaketime is available" if faketime_library() else "libfaketime is not installed either"
    return f"{reason}; {fallback}"


def _vdso_unusable_reason() -> str | None:
    if not sys.platform.startswith("linux") or platform.machine() != "x86_64":
        return f"the vDSO patch needs x86_64 Linux, this is {sys.platform}/{platform.machine()}"
    true = shutil.which("true")
    if true is None:
        return "no `true` program to try the vDSO patch on"
    try:
        process = spawn_skewed([true], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except ClockPatchError as e:
        return f"the vDSO patch failed: {e}"
    except OSError as e:
        code = errno.errorcode.get(e.errno or 0, str(e.errno))
        return f"the vDSO patch failed: cannot start a traced process ({code}: {e.strerror})"
    process.popen.wait(timeout=10)
    return None
