"""Format detection, load_history/save_history, and every shared corpus file loading by detection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from splitbrain.histories.errors import HistoryFormatError
from splitbrain.histories.formats import FORMATS, detect_format, load_history, save_history
from splitbrain.histories.op import Op

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"
CORPUS_FORMATS = {
    "porcupine-etcd": "jepsen-log",
    "porcupine-kv": "edn",
    "knossos-cas-register": "edn",
    "knossos-multi-register": "edn",
    "elle": "edn",
}
corpus_present = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"{CORPUS} (the shared corpus) is absent")

OPS = [
    Op(index=0, type="invoke", process=0, f="cas", value=[1, 2], time=10),
    Op(index=1, type="info", process="nemesis", f="start", value={"cut": ["n1"]}),
    Op(index=2, type="ok", process=0, f="cas", value=[1, 2], time=20, node="n1"),
    Op(index=3, type="invoke", process=1, f="txn", value=[["append", "x", 1], ["r", "y", None]]),
    Op(index=4, type="info", process=1, f="txn", value=[["append", "x", 1], ["r", "y", None]], error="timed-out"),
]


def write(tmp_path: Path, name: str, text: str | bytes) -> str:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"type": "invoke", "process": 0, "f": "read"}\n', "jsonl"),
        ('\n\n  {"index":0,"type":"invoke","process":0,"f":"read","value":null}\n', "jsonl"),
        ('{"type": "invoke", "process": 0,\n', "jsonl"),  # torn JSON: the JSON reader says what is wrong
        ("[{:process 0, :type :invoke, :f :read}]\n", "edn"),
        ("({:process 0, :type :invoke, :f :read})\n", "edn"),
        ("{:process 0, :type :invoke, :f :read}\n", "edn"),
        ("; A multi-register\n[{:type :invoke,\n :f :txn}]", "edn"),
        ("#jepsen.history.Op{:process 0, :type :invoke, :f :read}\n", "edn"),
        ("INFO  jepsen.util - 0\t:invoke\t:read\tnil\n", "jepsen-log"),
        ("INFO  jepsen.core - setting up\nDEBUG x\nINFO  jepsen.util - 0   :invoke :read  nil\n", "jepsen-log"),
        ("[2020-01-01 10:00:00] INFO  jepsen.util - 0\t:invoke\t:read\tnil\n", "jepsen-log"),
        ("", "jsonl"),
        ("\n  \n", "jsonl"),
    ],
)
def test_detect_format_by_content(tmp_path: Path, text: str, expected: str) -> None:
    assert detect_format(write(tmp_path, "history", text)) == expected


def test_an_unknown_format_says_which_formats_were_tried(tmp_path: Path) -> None:
    path = write(tmp_path, "h.txt", "\nhello world\nnot a history\n")
    with pytest.raises(HistoryFormatError) as caught:
        detect_format(path)
    assert (caught.value.file, caught.value.line) == (path, 2)
    for name in FORMATS:
        assert name in caught.value.message
    assert "hello world" in caught.value.message


def test_load_history_reads_each_format_by_detection_and_by_name(tmp_path: Path) -> None:
    jsonl = write(tmp_path, "h.jsonl", "".join(json.dumps(op.to_dict()) + "\n" for op in OPS))
    edn = tmp_path / "h.edn"
    save_history(OPS, str(edn), "edn")
    log = write(tmp_path, "h.log", "INFO  jepsen.util - 0\t:invoke\t:read\tnil\nINFO  jepsen.util - 0\t:ok\t:read\t1\n")
    assert list(load_history(jsonl)) == OPS
    assert list(load_history(jsonl, "jsonl")) == OPS
    assert list(load_history(str(edn))) == OPS
    assert list(load_history(str(edn), format="edn")) == OPS
    assert [op.value for op in load_history(log)] == [None, 1]
    assert [op.value for op in load_history(log, "jepsen-log")] == [None, 1]


def test_a_forced_format_is_used_even_when_detection_would_differ(tmp_path: Path) -> None:
    path = write(tmp_path, "h", "{:process 0, :type :invoke, :f :read}\n")
    with pytest.raises(HistoryFormatError) as caught:
        load_history(path, "jsonl")
    assert (caught.value.file, caught.value.line) == (path, 1)
    assert "invalid JSON" in caught.value.message


def test_an_unknown_format_name_lists_the_valid_ones(tmp_path: Path) -> None:
    path = write(tmp_path, "h.jsonl", "")
    with pytest.raises(ValueError, match="unknown history format 'yaml'; expected one of auto, jsonl, edn, jepsen-log"):
        load_history(path, "yaml")


def test_files_that_cannot_be_read_give_one_line_errors(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.edn")
    with pytest.raises(HistoryFormatError) as caught:
        load_history(missing)
    assert (caught.value.file, caught.value.line, caught.value.message) == (missing, None, "no such file")
    assert str(caught.value) == f"{missing}: no such file"
    with pytest.raises(HistoryFormatError, match="no such file"):
        load_history(missing, "edn")
    with pytest.raises(HistoryFormatError, match="is a directory"):
        load_history(str(tmp_path))
    binary = write(tmp_path, "h.bin", b"[{:process 0 \xff\xfe}]")
    with pytest.raises(HistoryFormatError, match="expected UTF-8 text, found byte 0xff"):
        load_history(binary)


def test_the_error_of_the_detected_reader_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "h.edn", "[{:process 0, :type :invoke, :f :read}\n {:process 0, :type :ok, :f :read}\n {:process 7, :type :ok, :f :read}]")
    with pytest.raises(HistoryFormatError) as caught:
        load_history(path)
    assert str(caught.value).startswith(f"{path}:3: ok completion of 'read' by process 7 has no open invocation")


@pytest.mark.parametrize("format", ["jsonl", "edn"])
def test_save_then_load_gives_equal_ops(tmp_path: Path, format: str) -> None:
    path = str(tmp_path / f"h.{format}")
    save_history(OPS, path, format)
    assert detect_format(path) == format
    assert list(load_history(path)) == OPS


def test_saving_jsonl_writes_sets_as_sorted_lists_and_refuses_what_json_cannot_hold(tmp_path: Path) -> None:
    path = str(tmp_path / "h.jsonl")
    save_history([Op(index=0, type="invoke", process=0, f="add", value=frozenset({3, 1, 2}))], path, "jsonl")
    assert load_history(path)[0].value == [1, 2, 3]
    with pytest.raises(ValueError, match=r"op 0 \(index 4\) cannot be written as JSON: map key \(1, 2\) is not a string"):
        save_history([Op(index=4, type="ok", process=0, f="read", value={(1, 2): "x"})], path, "jsonl")


def test_save_history_refuses_formats_it_cannot_write(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot write 'jepsen-log' histories; expected one of jsonl, edn"):
        save_history(OPS, str(tmp_path / "h.log"), "jepsen-log")
    with pytest.raises(ValueError, match="unknown history format 'auto'"):
        save_history(OPS, str(tmp_path / "h"), "auto")


# -- the shared corpus --------------------------------------------------------------------------------
@pytest.mark.corpus
@corpus_present
@pytest.mark.parametrize("folder", sorted(CORPUS_FORMATS))
def test_every_corpus_file_loads_by_detection_and_pairs(folder: str) -> None:
    manifest = json.loads((CORPUS / folder / "manifest.json").read_text())
    files = sorted(f for f in (CORPUS / folder).iterdir() if f.name != "manifest.json")
    assert sorted(f.name for f in files) == sorted(manifest["files"]), "every file is listed in the manifest"
    for file in files:
        assert detect_format(str(file)) == CORPUS_FORMATS[folder], file.name
        history = load_history(str(file))
        # one op per op line / op map, counted independently of the readers
        text = file.read_text()
        expected_ops = text.count("jepsen.util - ") if folder == "porcupine-etcd" else text.count(":type ")
        assert len(history) == expected_ops > 0, file.name
        invocations = [op for op in history if op.is_client and op.type == "invoke"]
        assert [o.invoke for o in history.operations()] == invocations, file.name
        assert all(op.is_client or op.process == "nemesis" for op in history), file.name


@pytest.mark.corpus
@corpus_present
def test_corpus_spot_checks() -> None:
    etcd = load_history(str(CORPUS / "porcupine-etcd" / "etcd_000.log"))
    assert etcd[0] == Op(index=0, type="invoke", process=0, f="read", value=None)
    assert etcd.line_of(0) == 1

    knossos = load_history(str(CORPUS / "knossos-cas-register" / "cas-failure.edn"))
    nemesis = knossos.nemesis_ops()
    assert len(nemesis) == 8  # kept, and not client ops
    assert nemesis[0] == Op(index=400, type="info", process="nemesis", f="start", value=None)
    assert knossos.line_of(400) == 401
    assert nemesis[1].value.startswith("Cut off [:n3 #[:n4 :n5 :n1]")  # EDN-looking text inside a string
    assert knossos.line_of(471) == 475  # a multi-line map: the line where it starts
    assert all(o.process != "nemesis" for o in knossos.operations())

    failure = load_history(str(CORPUS / "knossos-cas-register" / "immediate-failure.edn"))
    assert failure[2] == Op(index=2, type="fail", process=101, f="write", value=3,
                            error=["temporarily-unavailable", None])

    multi = load_history(str(CORPUS / "knossos-multi-register" / "multi-register.edn"))
    assert multi[0] == Op(index=0, type="invoke", process=3, f="txn", value=[["read", "x", None]], time=7686455705)
    assert multi[6].value == [["read", "x", 0], ["read", "y", 0]]
    assert (multi.line_of(0), multi.line_of(6)) == (2, 32)

    kv = load_history(str(CORPUS / "porcupine-kv" / "c01-ok.txt"))
    assert kv[0] == Op(index=0, type="invoke", process=0, f="append", key="0", value="x 0 0 y")
    assert kv.line_of(len(kv) - 1) == 116

    elle = load_history(str(CORPUS / "elle" / "si-without-g-single.edn"))
    assert [op.index for op in elle] == [10, 11, 20, 21, 30, 31, 40, 41]
    assert elle[-1].value == [["append", 6, 2], ["r", 9, [2]]]


@pytest.mark.corpus
@corpus_present
@pytest.mark.parametrize(
    "name",
    ["porcupine-etcd/etcd_000.log", "porcupine-kv/c10-bad.txt", "knossos-cas-register/cas-failure.edn",
     "knossos-multi-register/multi-register.edn", "elle/si-without-g-single.edn"],
)
@pytest.mark.parametrize("format", ["jsonl", "edn"])
def test_corpus_histories_convert_to_each_writable_format_without_change(tmp_path: Path, name: str, format: str) -> None:
    original = load_history(str(CORPUS / name))
    path = str(tmp_path / f"converted.{format}")
    save_history(original, path, format)
    converted = load_history(path)
    assert list(converted) == list(original)
    assert [converted.line_of(i) for i in range(len(converted))] == list(range(1, len(original) + 1))
