"""The EDN reader, the Jepsen EDN history importer and the exporter."""

from __future__ import annotations

import io
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from splitbrain.histories.edn import history_from_edn_text, parse_edn, read_edn_history, write_edn_history
from splitbrain.histories.errors import HistoryFormatError
from splitbrain.histories.op import Op

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"


def only_value(text: str) -> Any:
    values = [v for v, _ in parse_edn(text)]
    assert len(values) == 1, values
    return values[0]


def same(a: Any, b: Any) -> bool:
    """Equality that also compares types (Python's 1 == True == 1.0 would hide a wrong conversion)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, Op):
        return all(same(getattr(a, field), getattr(b, field)) for field in Op._fields)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


# -- values -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (":read", "read"),
        (":jepsen.history/op", "jepsen.history/op"),
        (":timed-out", "timed-out"),
        ('"plain"', "plain"),
        (r'"tab\there \"quoted\" back\\slash\nnew \u00e9"', 'tab\there "quoted" back\\slash\nnew é'),
        ('"spans\ntwo lines"', "spans\ntwo lines"),
        ("42", 42),
        ("-7", -7),
        ("+3", 3),
        ("0", 0),
        ("123456789012345678901234567890N", 123456789012345678901234567890),
        ("5N", 5),
        ("5M", 5),
        ("2.5", 2.5),
        ("-1.5e3", -1500.0),
        ("1E-2", 0.01),
        ("1.25M", Decimal("1.25")),
        ("1/3", Fraction(1, 3)),
        ("-2/4", Fraction(-1, 2)),
        ("##Inf", float("inf")),
        ("##-Inf", float("-inf")),
        ("nil", None),
        ("true", True),
        ("false", False),
        ("foo", "foo"),
        ("clojure.core/+", "clojure.core/+"),
        ("-", "-"),
        ("\\a", "a"),
        ("\\newline", "\n"),
        ("\\space", " "),
        ("\\u0041", "A"),
        ("[:read :x nil]", ["read", "x", None]),
        ("(1 2 (3))", [1, 2, [3]]),
        ("[]", []),
        ("{:a 1, :b [2 3]}", {"a": 1, "b": [2, 3]}),
        ('{"s" 1, 2 :two, nil nil}', {"s": 1, 2: "two", None: None}),
        ("{[1 2] :pair}", {(1, 2): "pair"}),
        ("#{1 2 3}", frozenset({1, 2, 3})),
        ("#{:n1 :n2}", frozenset({"n1", "n2"})),
        ("#{}", frozenset()),
        ("[1, 2,,, 3]", [1, 2, 3]),
        ("[1 ; a comment ]\n 2]", [1, 2]),
        ("[1 #_ 2 3]", [1, 3]),
        ("[#_ #_ 1 2 3]", [3]),
        ("[#_ [nested [deep]] 4]", [4]),
        ('#inst "2024-01-02T03:04:05.000-00:00"', "2024-01-02T03:04:05.000-00:00"),
        ('#uuid "f81d4fae-7dec-11d0-a765-00a0c91e6bf6"', "f81d4fae-7dec-11d0-a765-00a0c91e6bf6"),
        ("#jepsen.history.Op{:index 0, :type :invoke}", {"index": 0, "type": "invoke"}),
        ("[#my/tag [1 2]]", [[1, 2]]),
    ],
)
def test_parse_edn_converts_each_kind_of_value(text: str, expected: Any) -> None:
    assert same(only_value(text), expected)


def test_a_set_of_vectors_keeps_its_elements_as_lists() -> None:
    # Vectors are lists everywhere else, so a read value compares equal to the same vector in an op.
    assert same(only_value("#{[1 2] [3]}"), [[1, 2], [3]])


def test_a_map_key_that_is_a_map_becomes_hashable() -> None:
    value = only_value("{{:a 1} :x}")
    assert value == {frozenset({("a", 1)}): "x"}


def test_nan_reads_as_nan() -> None:
    value = only_value("##NaN")
    assert isinstance(value, float) and value != value


def test_top_level_values_report_the_line_they_start_on() -> None:
    text = '; header\n:a\n\n[1\n 2] "x"\n#_ :skipped\n{:k\n :v}'
    assert list(parse_edn(text)) == [("a", 2), ([1, 2], 4), ("x", 5), ({"k": "v"}, 7)]


def test_empty_and_comment_only_texts_have_no_values() -> None:
    assert list(parse_edn("")) == []
    assert list(parse_edn("  ; nothing\n,,\n")) == []


def test_deep_nesting_does_not_hit_the_recursion_limit() -> None:
    depth = 5000
    value = only_value("[" * depth + "]" * depth)
    for _ in range(depth - 1):
        value = value[0]
    assert value == []


# -- errors -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("[1 2\n 3", 2, "expected ']' to close the vector opened at line 1, found the end of the file"),
        ('[:a\n "unterminated\n more', 2, "expected a closing '\"'"),
        ("{:a 1\n :b]", 2, "expected '}' to close the map opened at line 1, found ']'"),
        ("[1]\n]", 2, "no collection is open"),
        ("{:a 1\n :b}", 1, "even number of forms"),
        ("\n{:a 1 :a 2}", 2, "distinct keys"),
        ('\n\n"bad \\q escape"', 3, "unsupported escape \\q"),
        ("[1\n 0x1F]", 2, "expected a number, found '0x1F'"),
        ("[012]", 1, "leading zero"),
        ("[1/0]", 1, "divides by zero"),
        ("[::double]", 1, "expected a keyword"),
        ("[:]", 1, "expected a keyword"),
        ("[1 #_]", 1, "expected a value after #_, found ']'"),
        ("\n#inst", 2, "expected a value after #inst, found the end of the file"),
        ("[1 #?(:clj 2)]", 1, "expected a value, found '#'"),
        ("[1\n 'quoted]", 2, "expected a value, found \"'quoted\""),
        ("[\\a\n \\abc]", 2, "expected a value, found '\\\\'"),
        ("##Infinity", 1, "expected a value, found '#'"),
    ],
)
def test_malformed_edn_names_file_line_and_what_was_expected(text: str, line: int, fragment: str) -> None:
    with pytest.raises(HistoryFormatError) as caught:
        list(parse_edn(text, "h.edn"))
    assert caught.value.file == "h.edn"
    assert caught.value.line == line
    assert fragment in caught.value.message
    assert str(caught.value).startswith(f"h.edn:{line}: ")


_edn_fragments = st.sampled_from(
    list('[](){}#_:;"\\ ,\n0123456789+-./abxyNME^\'`~@%&*!?<>=|')
    + ["nil", ":type", ":invoke", ":process", ":f", "##", "#{", "#_", "\\u00", "1/0", "{:process 0, :type :invoke, :f :read}"]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_edn_fragments, max_size=30).map("".join))
def test_any_text_reads_or_fails_with_a_history_format_error_naming_a_real_line(text: str) -> None:
    # Never an IndexError, KeyError, RecursionError...: the CLI turns only HistoryFormatError into one line.
    last_line = text.count("\n") + 1
    try:
        list(parse_edn(text, "f.edn"))
    except HistoryFormatError as e:
        assert e.line is not None and 1 <= e.line <= last_line
    try:
        history_from_edn_text(text, "f.edn")
    except HistoryFormatError as e:
        assert e.line is None or 1 <= e.line <= last_line


# -- histories ----------------------------------------------------------------------------------------
def write(tmp_path: Path, text: str, name: str = "h.edn") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_a_vector_of_op_maps_reads_as_ops_with_their_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "; comment\n"
        "[{:process 0, :type :invoke, :f :read, :value nil}\n"
        " {:process :nemesis, :type :info, :f :start, :value \"cut\"}\n"
        " ; a comment between ops\n"
        " {:process 0,\n"
        "  :type :ok,\n"
        "  :f :read, :value 3, :time 12, :node \"n1\", :debug {:ignored true}}]\n",
    )
    history = read_edn_history(path)
    assert list(history) == [
        Op(index=0, type="invoke", process=0, f="read", value=None),
        Op(index=1, type="info", process="nemesis", f="start", value="cut"),
        Op(index=2, type="ok", process=0, f="read", value=3, time=12, node="n1"),
    ]
    assert [history.line_of(i) for i in range(3)] == [2, 3, 5]
    assert history.source == path
    assert [op.type for op in history.nemesis_ops()] == ["info"]


def test_a_list_of_op_maps_reads_like_a_vector(tmp_path: Path) -> None:
    path = write(tmp_path, "({:type :invoke, :f :write, :value 0, :process 0}\n {:type :ok, :f :write, :value 0, :process 0})")
    assert [op.type for op in read_edn_history(path)] == ["invoke", "ok"]


def test_a_stream_of_op_maps_one_or_many_per_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '{:process 0, :type :invoke, :f :put, :key "k", :value "v"} {:process 1, :type :invoke, :f :get, :key "k", :value nil}\n'
        "\n"
        '{:process 1, :type :ok, :f :get, :key "k", :value "v"}\n'
        '{:process 0, :type :ok, :f :put, :key "k", :value "v"}\n',
    )
    history = read_edn_history(path)
    assert [(op.index, op.process, op.type, op.key, op.value) for op in history] == [
        (0, 0, "invoke", "k", "v"),
        (1, 1, "invoke", "k", None),
        (2, 1, "ok", "k", "v"),
        (3, 0, "ok", "k", "v"),
    ]
    assert [history.line_of(i) for i in range(4)] == [1, 1, 3, 4]


def test_explicit_indexes_and_tagged_op_records_are_kept(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[#jepsen.history.Op{:index 10, :time 0, :type :invoke, :process 2, :f :txn, :value [[:append 9 2] [:r 8 nil]]}\n"
        " #jepsen.history.Op{:index 11, :time 5, :type :ok, :process 2, :f :txn, :value [[:append 9 2] [:r 8 [1 2]]],"
        " :error [:temporarily-unavailable nil]}]",
    )
    history = read_edn_history(path)
    assert [op.index for op in history] == [10, 11]
    assert history[1].value == [["append", 9, 2], ["r", 8, [1, 2]]]
    assert history[1].error == ["temporarily-unavailable", None]
    assert history.line_of(1) == 2


def test_an_empty_history_file_reads_as_an_empty_history(tmp_path: Path) -> None:
    assert len(read_edn_history(write(tmp_path, ""))) == 0
    assert len(read_edn_history(write(tmp_path, "[]", "v.edn"))) == 0


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("[{:process 0, :type :invoke, :f :read, :value nil}\n [:not :a :map]]", 2, "expected an op map"),
        ("[{:process 0, :type :invoke, :f :read, :value nil}\n 42]", 2, "expected an op map"),
        ("{:process 0, :type :invoke, :f :read}\n{:process 0, :f :read}", 2, "expected :type"),
        ("[{:type :invoke, :f :read}]", 1, "expected :process"),
        ("[{:type :invoke, :process 0, :value 1}]", 1, "expected :f"),
        ("[{:process 0, :type :invoke, :f :read}\n {:process 0, :type :okay, :f :read}]", 2, "expected :type to be one of"),
        ("[{:process 1.5, :type :invoke, :f :read}]", 1, "expected :process to be an integer"),
        ("[{:process 0, :type :invoke, :f 7}]", 1, "expected :f to be a keyword"),
        ("[{:process 0, :type :invoke, :f :read, :index :x}]", 1, "expected :index to be an integer"),
        ("[{:process 0, :type :invoke, :f :read, :time 1.5}]", 1, "expected :time to be an integer"),
        ("[{:process 0, :type :invoke, :f :read, :node 3}]", 1, "expected :node to be a string"),
        ("[{:process 0, :type :invoke, :f :read}]\n[]", 2, "found a second top-level value"),
        ("#{{:process 0, :type :invoke, :f :read}}", 1, "expected an op map {:process .. :type .. :f ..}, found a vector, list or set"),
        # well-formed EDN, inconsistent history: pairing errors name the line of the op
        ("[{:process 0, :type :invoke, :f :read}\n {:process 0, :type :ok, :f :read}\n {:process 3, :type :ok, :f :read}]",
         3, "has no open invocation"),
        ("[{:process 0, :type :invoke, :f :read}\n\n {:process 0, :type :invoke, :f :write}]", 3, "line 1 is still open"),
        ("[{:process 0, :type :invoke, :f :read, :index 5}\n {:process 0, :type :ok, :f :read, :index 5}]", 2, "not greater"),
        # truncated and unterminated files
        ("[{:process 0, :type :invoke, :f :read}\n {:process 0, :type :ok,", 2,
         "expected '}' to close the map opened at line 2, found the end of the file"),
        ("[{:process 0, :type :invoke, :f :read}\n {:process 0, :type :ok, :f :read}\n", 3,
         "expected ']' to close the vector opened at line 1"),
        ('[{:process 0, :type :invoke, :f :write, :value "abc}]\n', 1, "expected a closing '\"'"),
    ],
)
def test_bad_histories_name_file_and_line(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(HistoryFormatError) as caught:
        read_edn_history(path)
    assert (caught.value.file, caught.value.line) == (path, line)
    assert fragment in caught.value.message
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith(f"{path}:{line}: ")


# -- exporter -----------------------------------------------------------------------------------------
def exported(ops: list[Op]) -> str:
    out = io.StringIO()
    write_edn_history(ops, out)
    return out.getvalue()


def test_the_exporter_writes_jepsen_keywords_where_jepsen_expects_them() -> None:
    text = exported(
        [
            Op(index=0, type="invoke", process=3, f="txn", value=[["append", "x", 1], ["r", 5, None]], time=7),
            Op(index=1, type="info", process="nemesis", f="start", value="cut off n1", node="n1"),
            Op(index=2, type="info", process=3, f="txn", value=[["append", "x", 1], ["r", 5, None]], error="timed-out"),
            Op(index=3, type="invoke", process=4, f="cas", key="k 1", value=[1, 2]),
            Op(index=4, type="fail", process=4, f="cas", key="k 1", value=[1, 2], error=["not-found", "k 1"]),
            Op(index=5, type="invoke", process=5, f="acquire", value={"lock": "l", "owner": "c1", "ttl ms": 5}),
        ]
    )
    lines = text.splitlines()
    assert lines[0] == "[{:index 0, :type :invoke, :process 3, :f :txn, :value [[:append :x 1] [:r 5 nil]], :time 7}"
    assert lines[1] == ' {:index 1, :type :info, :process :nemesis, :f :start, :value "cut off n1", :node "n1"}'
    assert lines[2].endswith(":error :timed-out}")
    assert ':key "k 1", :value [1 2]' in lines[3]
    assert ':error [:not-found "k 1"]' in lines[4]
    assert ':value {:lock "l", :owner "c1", "ttl ms" 5}' in lines[5]
    assert text.endswith("}]\n")


def test_an_empty_history_exports_as_an_empty_vector(tmp_path: Path) -> None:
    assert exported([]) == "[]\n"
    path = tmp_path / "e.edn"
    write_edn_history([], str(path))
    assert len(read_edn_history(str(path))) == 0


def test_written_history_reads_back_with_equal_ops(tmp_path: Path) -> None:
    ops = [
        Op(index=0, type="invoke", process=0, f="txn", value=[["w", "x", 1], ["read", "y", None]], time=1),
        Op(index=1, type="info", process="nemesis", f="kill", value={"n1": "killed", "n 2": [1.5, None, True]}),
        Op(index=2, type="ok", process=0, f="txn", value=[["w", "x", 1], ["read", "y", 0]], time=2, node="n1"),
        Op(index=3, type="invoke", process=1, f="add", value=frozenset({1, 2}), key=["k", 1]),
        Op(index=5, type="fail", process=1, f="add", value="a \"quoted\"\nline\ttab \x01", error="nil", key=["k", 1]),
        Op(index=6, type="invoke", process=2, f="weird f", value={(1, 2): Fraction(1, 3), "m": Decimal("1.5")}),
    ]
    path = tmp_path / "out.edn"
    write_edn_history(ops, str(path))
    back = read_edn_history(str(path))
    assert all(same(a, b) for a, b in zip(ops, back, strict=True)), (ops, list(back))
    assert [back.line_of(i) for i in range(len(ops))] == list(range(1, len(ops) + 1))


_names = st.sampled_from(["read", "write", "cas", "append", "r", "w", "x", "nil", "timed-out", "a/b", "two words", "", "1x"])
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=8),
    _names,
)
_values = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(_names, st.text(max_size=4), st.integers()), children, max_size=3),
        st.frozensets(st.integers(), max_size=4),
        st.lists(st.tuples(st.sampled_from(["append", "r", "w"]), _names, children).map(list), min_size=1, max_size=3),
    ),
    max_leaves=10,
)
_ops = st.builds(
    Op,
    index=st.integers(min_value=0, max_value=10**6),
    type=st.sampled_from(["invoke", "ok", "fail", "info"]),
    process=st.one_of(st.integers(min_value=0, max_value=50), st.just("nemesis"), _names.filter(bool)),
    f=_names,
    value=_values,
    key=st.one_of(st.none(), st.integers(), st.text(max_size=4)),
    time=st.one_of(st.just(-1), st.integers(min_value=0, max_value=2**62)),
    node=st.one_of(st.none(), st.text(max_size=4)),
    error=st.one_of(st.none(), _names, st.lists(_scalars, max_size=3)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_ops, max_size=6))
def test_round_trip_of_generated_ops_is_exact(ops: list[Op]) -> None:
    # Increasing indexes; each client op an invocation of its own process, so any mix pairs validly.
    ops = [op.with_(index=i, type="invoke", process=i) if op.is_client else op.with_(index=i) for i, op in enumerate(ops)]
    text = exported(ops)
    back = history_from_edn_text(text, "gen.edn")
    assert len(back) == len(ops)
    for a, b in zip(ops, back, strict=True):
        assert same(a, b), (a, b, text)


@pytest.mark.corpus
@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"{CORPUS} (the shared corpus) is absent")
@pytest.mark.parametrize(
    "name",
    ["knossos-cas-register/cas-failure.edn", "knossos-multi-register/multi-register.edn",
     "elle/si-without-g-single.edn", "porcupine-kv/c10-bad.txt"],
)
def test_corpus_files_round_trip_through_the_exporter(tmp_path: Path, name: str) -> None:
    original = read_edn_history(str(CORPUS / name))
    path = tmp_path / "copy.edn"
    write_edn_history(original, str(path))
    back = read_edn_history(str(path))
    assert len(back) == len(original) > 0
    assert all(same(a, b) for a, b in zip(original, back, strict=True))


_FIELD_TEXTS = {
    "process": ["0", "7", "-1", "07", ":nemesis", '"p"', "true"],
    "type": [":invoke", ":ok", ":fail", ":info", ":other", '"ok"'],
    "f": [":read", ":cas", ":x-y?", '"read"', "nil"],
    "key": [None, '"0"', "3", ":k", "[1 2]"],
    "value": ["nil", "4", "-0", "05", "[0 1]", "[0, 1]", "[ 3 ]", "[]", "[05]", "[1 [2]]", ":timed-out", '"x y"',
              '"a\\"b"', "1.5", "{:a 1}", "#{1}", "true", "nil:x", "[nil nil]", "[1 :a \"s\"]"],
    "extra": [None, ":index 10", ":time 5", ":node \"n1\"", ":error :timeout", ":process 3"],
}


def _edn_line(rng: Any, process: str, type_: str, f: str) -> str:
    """One op map line: mostly the given fields and texts real histories have, sometimes any of the texts."""
    def pick(field: str, usual: Any) -> Any:
        return usual if rng.random() < 0.9 else rng.choice(_FIELD_TEXTS[field])

    fields = [("process", pick("process", process)), ("type", pick("type", type_)), ("f", pick("f", f))]
    key = pick("key", rng.choice(_FIELD_TEXTS["key"][:3]))
    if key is not None:
        fields.append(("key", key))
    fields.append(("value", pick("value", rng.choice(_FIELD_TEXTS["value"][:8]))))
    if rng.random() < 0.5:
        rng.shuffle(fields)
    text = rng.choice([", ", " ", ",", "  "]).join(f":{k} {v}" for k, v in fields)
    extra = pick("extra", None)
    if extra is not None:
        text += ", " + extra
    return "{" + text + "}"


def _edn_lines(rng: Any) -> list[str]:
    """One or two operations, each an invocation and its completion."""
    lines = []
    for _ in range(rng.randint(1, 2)):
        process, f = rng.choice(["0", "7"]), rng.choice([":read", ":cas"])
        lines.append(_edn_line(rng, process, ":invoke", f))
        lines.append(_edn_line(rng, process, rng.choice([":ok", ":fail", ":info"]), f))
    return lines


def test_the_fast_path_reads_every_history_as_the_general_reader_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """Histories of one op map per line are read by regexes, others by the general reader: the same ops
    (or the same error) either way."""
    import random

    from splitbrain.histories import edn

    rng = random.Random(5)
    texts = []
    for _ in range(1500):
        lines = _edn_lines(rng)
        shape = rng.random()
        if shape < 0.4:
            lines[0] = "[" + lines[0]
            lines[-1] += "]"
        elif shape < 0.45:
            lines[0] = "[" + lines[0]  # never closed
        elif shape < 0.5:
            lines.insert(rng.randrange(len(lines) + 1), "; a comment")
        elif shape < 0.55:
            lines[-1] += " ; trailing comment"
        texts.append("\n".join(lines) + rng.choice(["", "\n", "\r\n"]))

    def read(text: str) -> object:
        try:
            return tuple(history_from_edn_text(text, "h.edn")), None
        except HistoryFormatError as e:
            return str(e)

    fast = [read(t) for t in texts]
    def fast_path_reads(text: str) -> bool:
        try:
            return edn._fast_history(text, "h.edn") is not None
        except HistoryFormatError:  # ops read, then paired
            return True

    assert sum(map(fast_path_reads, texts)) > 300  # the fast path is taken, and not only for errors
    monkeypatch.setattr(edn, "FAST_PATH", False)
    assert [read(t) for t in texts] == fast
    assert sum(isinstance(r, tuple) for r in fast) > 300  # not only errors
