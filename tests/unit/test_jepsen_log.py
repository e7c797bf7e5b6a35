"""Jepsen log lines (``INFO  jepsen.util - P\\t:type\\t:f\\tvalue``) as histories."""

from __future__ import annotations

from pathlib import Path

import pytest
from splitbrain.histories.errors import HistoryFormatError
from splitbrain.histories.jepsen_log import is_op_line, read_jepsen_log
from splitbrain.histories.op import Op

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "jepsen.log"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_op_lines_with_tabs_or_spaces_become_ops_and_other_output_is_skipped(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "INFO  jepsen.core - Running test etcd\n"
        "INFO  jepsen.util - 0\t:invoke\t:read\tnil\n"
        "INFO  jepsen.util - 3   :invoke :cas    [3 0]\n"
        "WARN  jepsen.db - node n1 slow\n"
        "\n"
        "INFO  jepsen.util - 0\t:ok\t:read\t4\n"
        "INFO  jepsen.util - 3 :fail :cas [3 0]\r\n"
        "INFO  jepsen.util - :nemesis\t:info\t:start\t{\"n1\" [\"n2\" \"n3\"]}\n",
    )
    history = read_jepsen_log(path)
    assert list(history) == [
        Op(index=0, type="invoke", process=0, f="read", value=None),
        Op(index=1, type="invoke", process=3, f="cas", value=[3, 0]),
        Op(index=2, type="ok", process=0, f="read", value=4),
        Op(index=3, type="fail", process=3, f="cas", value=[3, 0]),
        Op(index=4, type="info", process="nemesis", f="start", value={"n1": ["n2", "n3"]}),
    ]
    assert [history.line_of(i) for i in range(5)] == [2, 3, 6, 7, 8]


def test_timed_out_completions_keep_the_invocation_argument_and_record_the_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "INFO  jepsen.util - 4\t:invoke\t:write\t1\n"
        "INFO  jepsen.util - 1\t:invoke\t:cas\t[2 1]\n"
        "INFO  jepsen.util - 2\t:invoke\t:read\tnil\n"
        "INFO  jepsen.util - 4\t:info\t:write\t:timed-out\n"
        "INFO  jepsen.util - 1   :info   :cas    :timed-out\n"
        "INFO  jepsen.util - 2\t:fail\t:read\t:timed-out\n",
    )
    completions = list(read_jepsen_log(path))[3:]
    assert [(op.process, op.type, op.value, op.error) for op in completions] == [
        (4, "info", 1, "timed-out"),
        (1, "info", [2, 1], "timed-out"),
        (2, "fail", None, "timed-out"),
    ]


def test_a_string_timed_out_value_is_a_value_not_a_timeout(tmp_path: Path) -> None:
    path = write(tmp_path, 'INFO  jepsen.util - 4\t:invoke\t:write\t"x"\nINFO  jepsen.util - 4\t:info\t:write\t"timed-out"\n')
    assert [(op.value, op.error) for op in read_jepsen_log(path)] == [("x", None), ("timed-out", None)]


def test_a_trailing_error_field_is_read_as_edn_or_kept_as_text(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "INFO  jepsen.util - 1\t:invoke\t:cas\t[1 2]\n"
        "INFO  jepsen.util - 1\t:fail\t:cas\t[1 2]\t:precondition-failed\n"
        "INFO  jepsen.util - 2\t:invoke\t:read\tnil\n"
        "INFO  jepsen.util - 2\t:info\t:read\tnil\tconnection refused: n3\n",
    )
    history = read_jepsen_log(path)
    assert (history[1].value, history[1].error) == ([1, 2], "precondition-failed")
    assert (history[3].value, history[3].error) == (None, "connection refused: n3")


def test_logback_style_lines_with_a_timestamp_are_op_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "2020-07-14 15:05:52,455{GMT}\tINFO\t[jepsen worker 0] jepsen.util: 0\t:invoke\t:read\tnil\n"
        "2020-07-14 15:05:52,460{GMT}\tINFO\t[jepsen worker 0] jepsen.util: 0\t:ok\t:read\t2\n",
    )
    assert [(op.type, op.value) for op in read_jepsen_log(path)] == [("invoke", None), ("ok", 2)]


def test_an_empty_file_is_an_empty_history(tmp_path: Path) -> None:
    assert len(read_jepsen_log(write(tmp_path, ""))) == 0


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("INFO  jepsen.util - 0\t:invoke\t:read\tnil\nINFO  jepsen.util - 0\t:okay\t:read\t3\n", 2,
         "expected the op type to be one of :invoke :ok :fail :info, found ':okay'"),
        ("x\ny\nINFO  jepsen.util - 0\t:invoke\t:cas\t[3 0\n", 3,
         "expected ']' to close the vector opened at line 3, found the end of the line"),
        ("INFO  jepsen.util - 0\t:invoke\n", 1, "expected the op's :f after its type"),
        ("INFO  jepsen.util - 0\t:invoke\t:read\n", 1, "expected a value after :read"),
        ("INFO  jepsen.util - 0\t:invoke\t[:read]\tnil\n", 1, "expected the op's :f to be a keyword"),
        ('INFO  jepsen.util - 0\t:invoke\t:write\t"unterminated\n', 1,
         "expected a closing '\"' for the string that starts here, found the end of the line"),
        # well-formed lines, inconsistent history
        ("INFO  jepsen.util - 0\t:invoke\t:read\tnil\n\nINFO  jepsen.util - 5\t:ok\t:read\t1\n", 3, "has no open invocation"),
        ("INFO  jepsen.util - 0\t:invoke\t:read\tnil\nINFO  jepsen.util - 0\t:invoke\t:read\tnil\n", 2, "still open"),
    ],
)
def test_malformed_op_lines_name_file_and_line(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(HistoryFormatError) as caught:
        read_jepsen_log(path)
    assert (caught.value.file, caught.value.line) == (path, line)
    assert fragment in caught.value.message
    assert str(caught.value).startswith(f"{path}:{line}: ")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("INFO  jepsen.util - 2\t:ok\t:cas\t[3 0]", True),
        ("INFO  jepsen.util - :nemesis :info :start nil", True),
        ("INFO  jepsen.util - 2\t:bogus", True),  # looks like an op line: reading it reports the bad type
        ("INFO  jepsen.util - Timing out after 10 s", False),
        ("INFO  jepsen.core - 2\t:ok\t:cas\t[3 0]", False),
        ('{"type": "ok"}', False),
    ],
)
def test_is_op_line(line: str, expected: bool) -> None:
    assert is_op_line(line) is expected


@pytest.mark.corpus
@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"{CORPUS} (the shared corpus) is absent")
def test_every_porcupine_etcd_op_line_becomes_one_op() -> None:
    files = sorted((CORPUS / "porcupine-etcd").glob("*.log"))
    assert len(files) == 52
    for file in files:
        history = read_jepsen_log(str(file))
        op_lines = [n for n, text in enumerate(file.read_text().splitlines(), start=1) if "jepsen.util - " in text]
        assert [history.line_of(i) for i in range(len(history))] == op_lines, file.name
        # every :info is a timeout of a write or cas in these files, and keeps what it tried to do
        for op in history:
            if op.type == "info":
                assert op.error == "timed-out" and op.value is not None, (file.name, op)
    first = read_jepsen_log(str(CORPUS / "porcupine-etcd" / "etcd_000.log"))[0]
    assert first == Op(index=0, type="invoke", process=0, f="read", value=None)


_PIECES = {
    "process": ["0", "7", "-1", "007", "12", ":nemesis"],
    "type": [":invoke", ":ok", ":fail", ":info", ":weird"],
    "f": [":read", ":write", ":cas", ":a/b", ":x-y?", "read"],
    "value": ["nil", "4", "-0", "05", "5N", "[3 0]", "[3, 0]", "[ 3 0]", "[1 2 3]", ":timed-out", '"timed-out"',
              "{:a 1}", "#{1 2}", "1.5", "[-2 7]"],
    "tail": ["", " ", "\t", "\t:timed-out", "\tboom", ' "oops"', "\r"],
}


def test_the_fast_path_reads_every_line_as_the_edn_reader_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Common lines are read by one regex, the others by the EDN reader: both ways give the same ops
    (or the same error), for every combination of these pieces."""
    import itertools
    import random

    from splitbrain.histories import jepsen_log

    rng = random.Random(17)
    combos = list(itertools.product(*_PIECES.values()))
    lines = []
    for k, (process, type_, f, value, tail) in enumerate(rng.sample(combos, 3000)):
        sep = "\t" if k % 2 else "   "
        lines.append(f"INFO  jepsen.util - {process}{sep}{type_}{sep}{f}{sep}{value}{tail}")

    def read_all(one_line: str) -> object:
        try:
            return tuple(jepsen_log.read_jepsen_log(write(tmp_path, one_line + "\n")))
        except HistoryFormatError as e:
            return str(e)

    # and histories with invocations before their completions, which is where :timed-out matters
    lines += [f"INFO  jepsen.util - 3\t:invoke\t:write\t{v}\nINFO  jepsen.util - 3\t{t}\t:write\t{w}"
              for v in ("4", "[1 2]", "nil") for t in (":info", ":fail", ":ok") for w in (":timed-out", "4", "nil")]
    fast = [read_all(line) for line in lines]
    monkeypatch.setattr(jepsen_log, "FAST_LINE", jepsen_log.re.compile(r"(?!)"))
    slow = [read_all(line) for line in lines]
    assert fast == slow
    assert sum(isinstance(r, tuple) and len(r) > 0 for r in fast) > 500  # not only errors
