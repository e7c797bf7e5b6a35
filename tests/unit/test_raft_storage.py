"""The Raft node's write-ahead log: round trip, conflict truncation, torn tails, corruption."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from splitbrain.targets.raft.server.storage import WAL_FILE, DurableLog, StorageCorruptError, encode_record


def entry(index: int, term: int, data: object = None) -> dict:
    return {"index": index, "term": term, "data": data}


def reopen(directory: Path):
    wal, recovered = DurableLog.open(directory)
    wal.close()
    return recovered


def test_round_trip_keeps_entries_and_latest_hard_state(tmp_path: Path) -> None:
    wal, recovered = DurableLog.open(tmp_path)
    assert recovered.entries == [] and recovered.hard_state is None
    wal.save({"term": 1, "vote": "n1", "commit": 0}, [entry(1, 1, {"op": "put"}), entry(2, 1)])
    wal.save({"term": 2, "vote": None, "commit": 2}, [entry(3, 2, "x")])
    wal.close()

    recovered = reopen(tmp_path)
    assert recovered.entries == [entry(1, 1, {"op": "put"}), entry(2, 1), entry(3, 2, "x")]
    assert recovered.hard_state == {"term": 2, "vote": None, "commit": 2}
    assert recovered.torn_bytes == 0


def test_overlapping_entries_replace_the_conflicting_suffix(tmp_path: Path) -> None:
    wal, _ = DurableLog.open(tmp_path)
    wal.save(None, [entry(1, 1), entry(2, 1), entry(3, 1)])
    wal.save(None, [entry(2, 2)])  # a new leader's entry at index 2 replaces 2 and 3
    assert wal.last_index == 2
    wal.save(None, [entry(3, 2)])
    wal.close()
    assert reopen(tmp_path).entries == [entry(1, 1), entry(2, 2), entry(3, 2)]


def test_truncation_back_to_an_empty_log(tmp_path: Path) -> None:
    wal, _ = DurableLog.open(tmp_path)
    wal.save(None, [entry(1, 1), entry(2, 1)])
    wal.save(None, [entry(1, 3)])
    wal.close()
    assert reopen(tmp_path).entries == [entry(1, 3)]


def test_a_gap_in_the_log_is_refused(tmp_path: Path) -> None:
    wal, _ = DurableLog.open(tmp_path)
    wal.save(None, [entry(1, 1)])
    with pytest.raises(ValueError, match="gap"):
        wal.save(None, [entry(3, 1)])
    wal.close()


@pytest.mark.parametrize("cut", [1, 5, 11, 12, 13, 20])
def test_a_torn_tail_is_cut_off_and_the_rest_survives(tmp_path: Path, cut: int) -> None:
    wal, _ = DurableLog.open(tmp_path)
    wal.save({"term": 1, "vote": "n1", "commit": 1}, [entry(1, 1, "a")])
    wal.close()
    path = tmp_path / WAL_FILE
    intact = path.stat().st_size
    last = encode_record(["e", entry(2, 1, "b" * 30)])
    with open(path, "ab") as f:
        f.write(last[:cut])

    recovered = reopen(tmp_path)
    assert recovered.entries == [entry(1, 1, "a")]
    assert recovered.hard_state == {"term": 1, "vote": "n1", "commit": 1}
    assert recovered.torn_bytes == cut
    assert path.stat().st_size == intact
    # The log keeps working after the cut.
    wal, _ = DurableLog.open(tmp_path)
    wal.save(None, [entry(2, 1, "c")])
    wal.close()
    assert reopen(tmp_path).entries == [entry(1, 1, "a"), entry(2, 1, "c")]


def test_a_zero_filled_tail_is_a_torn_write(tmp_path: Path) -> None:
    wal, _ = DurableLog.open(tmp_path)
    wal.save(None, [entry(1, 1)])
    wal.close()
    with open(tmp_path / WAL_FILE, "ab") as f:
        f.write(b"\0" * 4096)
    recovered = reopen(tmp_path)
    assert recovered.entries == [entry(1, 1)] and recovered.torn_bytes == 4096


def test_a_damaged_last_record_payload_is_a_torn_write(tmp_path: Path) -> None:
    wal, _ = DurableLog.open(tmp_path)
    wal.save(None, [entry(1, 1), entry(2, 1, "tail")])
    wal.close()
    path = tmp_path / WAL_FILE
    data = bytearray(path.read_bytes())
    data[-2] ^= 0xFF
    path.write_bytes(bytes(data))
    assert reopen(tmp_path).entries == [entry(1, 1)]


def _corrupt_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_corruption_in_the_middle_stops_with_file_and_offset(tmp_path: Path) -> None:
    wal, _ = DurableLog.open(tmp_path)
    wal.save(None, [entry(1, 1, "first")])
    second_record_at = (tmp_path / WAL_FILE).stat().st_size
    wal.save(None, [entry(2, 1, "second"), entry(3, 1, "third")])
    wal.close()
    path = tmp_path / WAL_FILE
    size_before = path.stat().st_size
    _corrupt_byte(path, second_record_at + 20)  # inside the payload of the second record

    with pytest.raises(StorageCorruptError) as caught:
        DurableLog.open(tmp_path)
    assert caught.value.offset == second_record_at
    assert str(caught.value) == f"{path}: byte offset {second_record_at}: record checksum mismatch"
    assert path.stat().st_size == size_before  # nothing was cut


def test_a_damaged_length_in_the_middle_is_corruption_not_a_torn_tail(tmp_path: Path) -> None:
    wal, _ = DurableLog.open(tmp_path)
    wal.save(None, [entry(1, 1)])
    second_record_at = (tmp_path / WAL_FILE).stat().st_size
    wal.save(None, [entry(2, 1), entry(3, 1)])
    wal.close()
    path = tmp_path / WAL_FILE
    data = bytearray(path.read_bytes())
    # A length pointing beyond the end of the file would look like a torn payload without the header CRC.
    struct.pack_into(">I", data, second_record_at, 10_000)
    path.write_bytes(bytes(data))
    with pytest.raises(StorageCorruptError, match=f"byte offset {second_record_at}: record header checksum"):
        DurableLog.open(tmp_path)


def test_a_record_out_of_sequence_is_corruption(tmp_path: Path) -> None:
    path = tmp_path / WAL_FILE
    path.write_bytes(encode_record(["e", entry(1, 1)]) + encode_record(["e", entry(5, 1)]))
    with pytest.raises(StorageCorruptError, match="entry index 5 does not follow 1"):
        DurableLog.open(tmp_path)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(1, 3)), min_size=1, max_size=12))
def test_recovery_matches_an_in_memory_log(tmp_path_factory, batches) -> None:
    """Any sequence of (overlap back, batch size) saves replays to the same log as a list would."""
    directory = tmp_path_factory.mktemp("wal")
    model: list[dict] = []
    wal, _ = DurableLog.open(directory)
    for term, (back, size) in enumerate(batches, start=1):
        first = max(1, len(model) + 1 - back)
        batch = [entry(i, term) for i in range(first, first + size)]
        wal.save({"term": term, "vote": None, "commit": 0}, batch)
        model = model[: first - 1] + batch
    wal.close()
    recovered = reopen(directory)
    assert recovered.entries == model
    assert recovered.hard_state == {"term": len(batches), "vote": None, "commit": 0}


def test_an_unsynced_log_loses_what_was_not_flushed_in_a_crash(tmp_path: Path) -> None:
    """The no-fsync bug: saved records sit in memory until flushed, as in a volatile disk cache."""
    wal, _ = DurableLog.open(tmp_path, sync=False)
    wal.save({"term": 1, "vote": "n1", "commit": 0}, [entry(1, 1)])
    wal.flush_volatile()
    wal.save({"term": 1, "vote": "n1", "commit": 1}, [entry(2, 1)])
    crashed = reopen(tmp_path)  # the process dies here: the second save never reached the file
    assert crashed.entries == [entry(1, 1)]
    assert crashed.hard_state == {"term": 1, "vote": "n1", "commit": 0}
    wal.close()  # a clean stop writes the rest
    assert reopen(tmp_path).entries == [entry(1, 1), entry(2, 1)]


def test_an_unsynced_commit_update_is_read_back_in_order(tmp_path: Path) -> None:
    wal, _ = DurableLog.open(tmp_path)
    wal.save({"term": 1, "vote": "n1", "commit": 0}, [entry(1, 1)])
    wal.save({"term": 1, "vote": "n1", "commit": 1}, [], fsync=False)
    wal.close()
    assert reopen(tmp_path).hard_state == {"term": 1, "vote": "n1", "commit": 1}
