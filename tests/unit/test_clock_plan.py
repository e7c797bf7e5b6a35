"""The clock nemesis without root: its seeded plan, its per-node offsets over fake processes, and the
pure parts of the vDSO patch (ELF parsing, and the stub machine code run natively in this process)."""

from __future__ import annotations

import ctypes
import json
import mmap
import platform
import random
import struct
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from splitbrain.control import clockpatch
from splitbrain.control.clockpatch import ClockPatchError
from splitbrain.control.errors import ConfigError
from splitbrain.histories.op import Op
from splitbrain.nemesis.clock import (
    BUMP,
    CLOCK_FS,
    NS_PER_MS,
    RESET,
    STROBE,
    ClockLimits,
    ClockNemesis,
    Strobe,
    clock_plan,
    magnitude_ms,
    parse_bump,
    parse_strobe,
    strobe_offsets,
)

NODES = ["n1", "n2", "n3", "n4", "n5"]


# -- The plan ------------------------------------------------------------------------------------------


def test_same_seed_gives_the_same_plan_and_another_seed_another() -> None:
    first = clock_plan(random.Random(42), NODES, 50)
    again = clock_plan(random.Random(42), NODES, 50)
    other = clock_plan(random.Random(43), NODES, 50)
    assert first == again
    assert first != other


def test_plan_values_are_json_and_name_only_known_nodes() -> None:
    plan = clock_plan(random.Random(7), NODES, 200)
    assert {fault.f for fault in plan} == set(CLOCK_FS)
    for fault in plan:
        assert json.loads(json.dumps(fault.value)) == fault.value
        targets = fault.value if fault.f == RESET else list(fault.value)
        assert targets and set(targets) <= set(NODES)
        if fault.f == BUMP:
            parse_bump(fault.value)  # a planned op is always one the nemesis accepts
        if fault.f == STROBE:
            parse_strobe(fault.value)


def test_bumps_span_milliseconds_to_minutes_in_both_directions() -> None:
    limits = ClockLimits()
    deltas = [d for f in clock_plan(random.Random(1), NODES, 400) if f.f == BUMP for d in f.value.values()]
    assert all(limits.min_bump_ms <= abs(d) <= limits.max_bump_ms for d in deltas)
    assert any(d < 0 for d in deltas) and any(d > 0 for d in deltas)
    assert any(abs(d) < 10 for d in deltas), "no millisecond-sized bump"
    assert any(abs(d) >= 60_000 for d in deltas), "no minute-sized bump"


def test_strobes_respect_their_limits() -> None:
    limits = ClockLimits(max_strobe_delta_ms=500, min_period_ms=5, max_period_ms=50, max_duration_ms=2000)
    strobes = [
        s for f in clock_plan(random.Random(3), NODES, 300, limits) if f.f == STROBE for s in f.value.values()
    ]
    assert strobes
    for s in strobes:
        assert 1 <= abs(s["delta_ms"]) <= 500
        assert 5 <= s["period_ms"] <= 50
        assert limits.min_duration_ms <= s["duration_ms"] <= 2000


def test_weights_select_the_op_kinds() -> None:
    plan = clock_plan(random.Random(5), NODES, 50, ClockLimits(strobe_weight=0, reset_weight=0))
    assert {f.f for f in plan} == {BUMP}


@pytest.mark.parametrize(
    "limits",
    [
        {"min_bump_ms": 0},
        {"min_bump_ms": 10, "max_bump_ms": 5},
        {"bump_weight": 0, "strobe_weight": 0, "reset_weight": 0},
        {"bump_weight": -1},
    ],
)
def test_bad_limits_are_a_config_error(limits: dict[str, int]) -> None:
    with pytest.raises(ConfigError, match="clock limits"):
        ClockLimits(**limits)


def test_a_plan_needs_nodes() -> None:
    with pytest.raises(ConfigError, match="at least one node"):
        clock_plan(random.Random(0), [], 3)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 10**7), st.integers(0, 10**7), st.integers(0, 2**32))
def test_magnitude_stays_in_range(low: int, extra: int, seed: int) -> None:
    high = low + extra
    assert low <= magnitude_ms(random.Random(seed), low, high) <= high


# -- Validation of op values ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, {}, {"n1": "5"}, {"n1": 1.5}, {"n1": True}, [1]])
def test_malformed_bumps_are_refused_with_a_reason(value: object) -> None:
    with pytest.raises(ValueError, match=BUMP):
        parse_bump(value)


@pytest.mark.parametrize(
    "value",
    [
        {"n1": {"delta_ms": 5, "period_ms": 0, "duration_ms": 10}},
        {"n1": {"delta_ms": 5, "period_ms": 10}},
        {"n1": 5},
    ],
)
def test_malformed_strobes_are_refused_with_a_reason(value: object) -> None:
    with pytest.raises(ValueError, match=STROBE):
        parse_strobe(value)


def test_strobe_offsets_alternate_and_end_at_the_base() -> None:
    base = 7 * NS_PER_MS
    offsets = strobe_offsets(base, Strobe(delta_ms=100, period_ms=10, duration_ms=45))
    skewed = base + 100 * NS_PER_MS
    assert offsets == [skewed, base, skewed, base, base]


# -- The nemesis over fake processes -------------------------------------------------------------------


class FakeProcess:
    """Records every offset written; can be made to die like a killed process."""

    mechanism = "fake"

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.written: list[int] = []
        self.dead = False
        self._lock = threading.Lock()

    def set_offset(self, offset_ns: int) -> None:
        if self.dead:
            raise ClockPatchError(f"process {self.pid} is gone")
        with self._lock:
            self.written.append(offset_ns)

    @property
    def offset(self) -> int:
        with self._lock:
            return self.written[-1] if self.written else 0


def nemesis_op(f: str, value: object) -> Op:
    return Op(index=0, type="invoke", process="nemesis", f=f, value=value)


@pytest.fixture
def cluster() -> tuple[ClockNemesis, dict[str, list[FakeProcess]]]:
    processes = {"n1": [FakeProcess(1), FakeProcess(2)], "n2": [FakeProcess(3)]}
    return ClockNemesis(processes), processes


def test_bumps_add_up_per_node_and_reach_every_process(cluster) -> None:
    nemesis, processes = cluster
    done = nemesis.invoke(None, nemesis_op(BUMP, {"n1": 1500}))
    assert done.type == "info" and done.value == {"n1": 1500} and done.error is None
    nemesis.invoke(None, nemesis_op(BUMP, {"n1": -2000, "n2": 60_000}))
    assert [p.offset for p in processes["n1"]] == [-500 * NS_PER_MS] * 2
    assert processes["n2"][0].offset == 60_000 * NS_PER_MS
    assert nemesis.offset_ns("n1") == -500 * NS_PER_MS


def test_reset_and_heal_put_every_clock_back_and_heal_is_idempotent(cluster) -> None:
    nemesis, processes = cluster
    nemesis.bump({"n1": 10, "n2": -10})
    done = nemesis.invoke(None, nemesis_op(RESET, ["n1"]))
    assert done.value == {"n1": 0}
    assert processes["n1"][0].offset == 0 and processes["n2"][0].offset == -10 * NS_PER_MS
    nemesis.heal(None)
    nemesis.heal(None)
    assert all(p.offset == 0 for ps in processes.values() for p in ps)


def test_a_process_registered_later_gets_the_nodes_current_offset(cluster) -> None:
    nemesis, _ = cluster
    nemesis.bump({"n2": 300})
    restarted = FakeProcess(9)
    nemesis.register("n2", restarted)
    assert restarted.offset == 300 * NS_PER_MS


def test_a_bump_of_a_node_without_processes_waits_for_them_and_says_so() -> None:
    nemesis = ClockNemesis()
    done = nemesis.invoke(None, nemesis_op(BUMP, {"n3": 42}))
    assert "n3: no process to skew yet" in (done.error or "")
    late = FakeProcess(4)
    nemesis.register("n3", late)
    assert late.offset == 42 * NS_PER_MS


def test_a_dead_process_is_dropped_and_the_others_still_skewed(cluster) -> None:
    nemesis, processes = cluster
    processes["n1"][0].dead = True
    done = nemesis.invoke(None, nemesis_op(BUMP, {"n1": 5}))
    assert "dropped pid 1" in (done.error or "")
    assert processes["n1"][1].offset == 5 * NS_PER_MS
    assert nemesis.mechanisms() == {"n1": {"fake"}, "n2": {"fake"}}
    processes["n1"][0].dead = False
    nemesis.bump({"n1": 5})
    assert processes["n1"][0].offset == 0, "a dropped process is not written to again"


def test_malformed_ops_complete_with_an_error_instead_of_raising(cluster) -> None:
    nemesis, processes = cluster
    done = nemesis.invoke(None, nemesis_op(BUMP, {"n1": "soon"}))
    assert done.type == "info" and "expected an integer" in done.error
    far = nemesis.invoke(None, nemesis_op(BUMP, {"n1": 200 * 365 * 24 * 3600 * 1000}))
    assert "beyond 100 years" in far.error
    assert processes["n1"][0].written == [], "a refused op changes nothing"
    assert "does not handle" in nemesis.invoke(None, nemesis_op("kill", None)).error


@pytest.mark.timeout(20)
def test_a_strobe_flips_between_base_and_skew_and_ends_at_the_base(cluster) -> None:
    nemesis, processes = cluster
    nemesis.bump({"n2": 1000})
    done = nemesis.invoke(
        None, nemesis_op(STROBE, {"n2": {"delta_ms": 250, "period_ms": 1, "duration_ms": 6}})
    )
    assert done.value == {"n2": {"base_ms": 1000, "strobe_ms": 1250}}
    nemesis.wait_strobes()
    base, skewed = 1000 * NS_PER_MS, 1250 * NS_PER_MS
    assert processes["n2"][0].written == [base, skewed, base, skewed, base, skewed, base, base]
    assert nemesis.offset_ns("n2") == base


@pytest.mark.timeout(20)
def test_a_bump_during_a_strobe_stops_it_and_counts_from_the_base(cluster) -> None:
    nemesis, processes = cluster
    nemesis.strobe({"n1": Strobe(delta_ms=60_000, period_ms=5, duration_ms=60_000)})
    while len(processes["n1"][0].written) < 3:  # let it flip a few times
        time.sleep(0.005)
    nemesis.bump({"n1": 7})
    count_after_bump = len(processes["n1"][0].written)
    nemesis.heal(None)  # joins the stopped strobe thread
    written = processes["n1"][0].written
    assert written[count_after_bump - 1] == 7 * NS_PER_MS
    assert written[count_after_bump:] == [0], "the stopped strobe wrote after the bump"
    assert not [t for t in threading.enumerate() if t.name.startswith("clock-strobe-")]


@pytest.mark.timeout(20)
def test_heal_stops_a_running_strobe_at_zero(cluster) -> None:
    nemesis, processes = cluster
    nemesis.strobe({"n1": Strobe(delta_ms=-100, period_ms=2, duration_ms=60_000)})
    nemesis.heal(None)
    assert processes["n1"][0].offset == 0 and nemesis.offset_ns("n1") == 0
    assert not [t for t in threading.enumerate() if t.name.startswith("clock-strobe-")]


# -- The vDSO patch's pure parts -----------------------------------------------------------------------

x86_64_linux = pytest.mark.skipif(platform.machine() != "x86_64", reason="the vDSO stubs are x86_64 code")


def own_vdso() -> tuple[int, bytes]:
    start, end = clockpatch.vdso_range("self")
    with open("/proc/self/mem", "rb") as mem:
        mem.seek(start)
        return start, mem.read(end - start)


@x86_64_linux
def test_this_machines_vdso_parses_and_has_room_past_its_segments() -> None:
    _, image = own_vdso()
    layout = clockpatch.vdso_layout(image)
    for names, _entry in clockpatch.PATCHED_FUNCTIONS.values():
        assert names[0] in layout.functions
    assert layout.blob_offset % 16 == 0
    assert layout.blob_offset + clockpatch.BLOB_SIZE <= len(image)
    # Nothing the loader uses lies where the blob goes: every loaded byte ends before it.
    loads = [h for h in clockpatch._program_headers(image) if h[0] == clockpatch.PT_LOAD]
    assert all(offset + filesz <= layout.blob_offset for _t, offset, _v, filesz in loads)


@x86_64_linux
def test_patches_write_the_blob_first_then_point_symbols_at_the_stubs() -> None:
    base, image = own_vdso()
    slot, writes = clockpatch.vdso_patches(image, base, offset_ns=123)
    blob_address, blob = writes[0]
    assert slot == blob_address and blob[24:32] == clockpatch.MAGIC
    assert struct.unpack_from("<q", blob, 0)[0] == 123
    layout = clockpatch.vdso_layout(image)
    stub_vaddrs = {struct.unpack("<Q", data)[0] for _address, data in writes[1:]}
    entries = {clockpatch.CLOCK_GETTIME_ENTRY, clockpatch.GETTIMEOFDAY_ENTRY, clockpatch.TIME_ENTRY}
    assert stub_vaddrs == {layout.blob_offset + e - layout.vaddr_delta for e in entries}


@pytest.mark.parametrize(
    ("image", "reason"),
    [(b"hello" * 100, "not an ELF"), (b"\x7fELF\x01\x01" + bytes(200), "64-bit")],
)
def test_a_broken_vdso_image_is_a_clear_error(image: bytes, reason: str) -> None:
    with pytest.raises(ClockPatchError, match=reason):
        clockpatch.vdso_layout(image)


@x86_64_linux
def test_a_vdso_without_room_is_refused() -> None:
    _, image = own_vdso()
    loads = [h for h in clockpatch._program_headers(image) if h[0] == clockpatch.PT_LOAD]
    loaded_end = max(offset + filesz for _t, offset, _v, filesz in loads)
    with pytest.raises(ClockPatchError, match="no room"):
        clockpatch.vdso_layout(image[: loaded_end + 16])


class Timespec(ctypes.Structure):
    _fields_ = [("sec", ctypes.c_int64), ("nsec", ctypes.c_int64)]


class NativeStubs:
    """The blob copied into an executable page of this process, wired to this process's own vDSO: the
    exact machine code a patched process runs, callable through ctypes."""

    def __init__(self) -> None:
        base, image = own_vdso()
        layout = clockpatch.vdso_layout(image)
        originals = {
            fn: base + layout.functions[names[0]] for fn, (names, _e) in clockpatch.PATCHED_FUNCTIONS.items()
        }
        blob = clockpatch.patch_blob(0, originals["clock_gettime"], originals["gettimeofday"])
        self.page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        self.page.write(blob)
        self.address = ctypes.addressof(ctypes.c_char.from_buffer(self.page))
        ts_pointer = ctypes.POINTER(Timespec)
        self.clock_gettime = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ts_pointer)(
            self.address + clockpatch.CLOCK_GETTIME_ENTRY
        )
        self.gettimeofday = ctypes.CFUNCTYPE(ctypes.c_int, ts_pointer, ctypes.c_void_p)(
            self.address + clockpatch.GETTIMEOFDAY_ENTRY
        )
        self.time = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.POINTER(ctypes.c_int64))(
            self.address + clockpatch.TIME_ENTRY
        )

    def set_offset(self, offset_ns: int) -> None:
        self.page[0:8] = struct.pack("<q", offset_ns)

    def read_clock(self, clock: int) -> int:
        ts = Timespec()
        assert self.clock_gettime(clock, ctypes.byref(ts)) == 0
        assert 0 <= ts.nsec < 1_000_000_000
        return ts.sec * 1_000_000_000 + ts.nsec


@pytest.fixture(scope="module")
def stubs() -> NativeStubs:
    if platform.machine() != "x86_64":
        pytest.skip("the vDSO stubs are x86_64 code")
    return NativeStubs()


# Each check brackets the stub's reading between two real readings, so no timing is asserted.
@pytest.mark.parametrize("offset_ns", [0, 3600 * 10**9, -30 * 10**9, 1, -1, -999_999_999, 10**9 + 7])
@pytest.mark.parametrize("clock", [time.CLOCK_REALTIME, 5, 11])  # REALTIME, REALTIME_COARSE, TAI
def test_the_clock_gettime_stub_adds_the_offset_to_wall_clocks(stubs, clock: int, offset_ns: int) -> None:
    stubs.set_offset(offset_ns)
    coarse_slack = 20_000_000 if clock == 5 else 0  # the coarse clock lags by up to a tick
    before = time.clock_gettime_ns(clock)
    seen = stubs.read_clock(clock) - offset_ns
    after = time.clock_gettime_ns(clock)
    assert before - coarse_slack <= seen <= after + coarse_slack


@pytest.mark.parametrize("clock", [time.CLOCK_MONOTONIC, time.CLOCK_BOOTTIME, time.CLOCK_MONOTONIC_RAW])
def test_the_clock_gettime_stub_leaves_monotonic_clocks_alone(stubs, clock: int) -> None:
    stubs.set_offset(3600 * 10**9)
    before = time.clock_gettime_ns(clock)
    seen = stubs.read_clock(clock)
    after = time.clock_gettime_ns(clock)
    assert before <= seen <= after


def test_the_clock_gettime_stub_passes_errors_through(stubs) -> None:
    stubs.set_offset(10**9)
    assert stubs.clock_gettime(12345, ctypes.byref(Timespec())) == -22  # -EINVAL, as the vDSO returns


@pytest.mark.parametrize("offset_ns", [0, 86_400 * 10**9, -1500 * NS_PER_MS])
def test_the_gettimeofday_and_time_stubs_add_the_offset(stubs, offset_ns: int) -> None:
    stubs.set_offset(offset_ns)
    tv = Timespec()  # struct timeval has the same layout: seconds, microseconds
    before = time.time_ns()
    assert stubs.gettimeofday(ctypes.byref(tv), None) == 0
    stored = ctypes.c_int64(0)
    seconds = stubs.time(ctypes.byref(stored))
    after = time.time_ns()
    assert 0 <= tv.nsec < 1_000_000
    seen_us = tv.sec * 1_000_000 + tv.nsec - offset_ns // 1000
    assert before // 1000 - 1 <= seen_us <= after // 1000 + 1
    assert seconds == stored.value
    assert (before + offset_ns) // 10**9 <= seconds <= (after + offset_ns) // 10**9
    assert stubs.gettimeofday(None, None) == 0  # tv may be NULL


def test_faketime_spec_is_libfaketimes_relative_syntax() -> None:
    assert clockpatch.faketime_spec(3600 * 10**9) == "+3600.000000"
    assert clockpatch.faketime_spec(-30_250_000_000) == "-30.250000"
    assert clockpatch.faketime_spec(1500) == "+0.000001"


@x86_64_linux
def test_without_dt_hash_the_symbols_are_found_through_dt_gnu_hash() -> None:
    _, image = own_vdso()
    dynamic = next(h for h in clockpatch._program_headers(image) if h[0] == clockpatch.PT_DYNAMIC)
    patched = bytearray(image)
    for pos in range(dynamic[1], dynamic[1] + dynamic[3], 16):
        if struct.unpack_from("<q", image, pos)[0] == clockpatch.DT_HASH:
            struct.pack_into("<q", patched, pos, 0x6FFFFFF9)  # DT_RELACOUNT: ignored by the parser
            break
    else:
        pytest.skip("this vDSO has no DT_HASH to hide")
    assert clockpatch.vdso_layout(bytes(patched)) == clockpatch.vdso_layout(image)


@x86_64_linux
def test_a_truncated_vdso_is_a_clear_error_not_a_crash() -> None:
    _, image = own_vdso()
    for cut in (70, 200, 400, 0x500):
        with pytest.raises(ClockPatchError):
            clockpatch.vdso_layout(image[:cut])


# -- Refusing wrappers that would leave the real program unskewed --------------------------------------


@pytest.mark.parametrize(
    "argv",
    [["ip", "netns", "exec", "n1", "etcd"], ["/usr/bin/env", "python3"], ["sudo", "java"], ["nsenter"]],
)
def test_exec_wrappers_are_refused_with_the_way_out(argv: list[str]) -> None:
    reason = clockpatch.exec_wrapper_reason(argv, None)
    assert reason is not None and "netns=" in reason


@pytest.mark.parametrize("shebang", ["#!/bin/sh", "#!/usr/bin/env bash", "#! /bin/dash -e"])
def test_shell_scripts_are_refused(tmp_path, shebang: str) -> None:
    script = tmp_path / "start.sh"
    script.write_text(f"{shebang}\nexec java -jar server.jar\n")
    reason = clockpatch.exec_wrapper_reason([str(script)], str(script))
    assert reason is not None and "script" in reason and "allow_wrapper" in reason


@pytest.mark.parametrize(
    "head", ["#!/usr/bin/python3\nprint(1)\n", "#!/usr/bin/env python3\n", "\x7fELF\x02\x01"]
)
def test_real_programs_and_non_shell_scripts_pass(tmp_path, head: str) -> None:
    program = tmp_path / "program"
    program.write_text(head)
    assert clockpatch.exec_wrapper_reason([str(program)], str(program)) is None


@x86_64_linux
def test_spawn_skewed_refuses_a_wrapper_before_starting_anything() -> None:
    with pytest.raises(ClockPatchError, match="execs another program"):
        clockpatch.spawn_skewed(["ip", "netns", "exec", "n1", "true"])
