"""Evidence shrinking: a non-linearizable history's minimal failing sub-history, still illegal, and small."""

from __future__ import annotations

from pathlib import Path

import pytest
from splitbrain.checkers.evidence import concurrent, shrink_evidence
from splitbrain.checkers.linearizable import check_linearizable
from splitbrain.checkers.models import cas_register, kv
from splitbrain.harness.cli import main
from splitbrain.histories.formats import load_history
from splitbrain.histories.history import History
from splitbrain.histories.op import Op

from tests.corpus import CORPUS, corpus_files, require_corpus

ILLEGAL = [("porcupine-kv", "c10-bad.txt"), ("porcupine-kv", "c01-bad.txt")] + \
    [("porcupine-etcd", name) for name, entry in corpus_files("porcupine-etcd") if entry["expected"] == "invalid"][:6]


def model_of(folder: str):  # noqa: ANN201
    return kv("") if folder == "porcupine-kv" else cas_register(None)


@pytest.mark.corpus
@pytest.mark.timeout(300)
@pytest.mark.parametrize(("folder", "name"), ILLEGAL)
def test_a_corpus_history_porcupine_calls_illegal_shrinks_to_a_few_ops_and_stays_illegal(folder: str, name: str) -> None:
    require_corpus()
    model = model_of(folder)
    history = load_history(str(CORPUS / folder / name))
    evidence = shrink_evidence(history, lambda h: check_linearizable(h, model))
    small = evidence.history
    assert check_linearizable(small, model).valid is False
    assert 2 <= len(small.operations()) <= 30 < len(history.operations())
    assert evidence.minimal
    # Not a value from nowhere: with real time forgotten, every value read is explained.
    assert check_linearizable(concurrent(small.operations()), model).valid is True
    ops = small.operations()
    for i in range(len(ops)):  # 1-minimal, checked here independently of the search
        kept = [op for o in ops[:i] + ops[i + 1:] for op in (o.invoke, o.completion) if op is not None]
        rest = History(sorted(kept, key=lambda op: op.index))
        assert not (check_linearizable(rest, model).valid is False
                    and check_linearizable(concurrent(rest.operations()), model).valid is True)


def test_a_stale_read_shrinks_to_its_write_a_later_write_and_the_read() -> None:
    ops = []
    for p in range(4):  # noise: other processes write and read other values, concurrently
        ops += [Op(len(ops), "invoke", p + 2, "write", p + 10), Op(len(ops) + 1, "ok", p + 2, "write", p + 10)]
    ops += [Op(len(ops), "invoke", 0, "write", 1), Op(len(ops) + 1, "ok", 0, "write", 1),
            Op(len(ops) + 2, "invoke", 1, "read", None), Op(len(ops) + 3, "ok", 1, "read", 12)]
    evidence = shrink_evidence(History(ops), lambda h: check_linearizable(h, cas_register(None)))
    shrunk = [(o.f, o.value) for o in evidence.history.operations()]
    assert len(shrunk) == 3 and shrunk[0] == ("write", 12) and shrunk[-1] == ("read", 12)  # 12, then a newer write


def test_a_valid_history_has_no_evidence() -> None:
    ops = [Op(0, "invoke", 0, "write", 1), Op(1, "ok", 0, "write", 1)]
    with pytest.raises(ValueError, match="not invalid"):
        shrink_evidence(History(ops), lambda h: check_linearizable(h, cas_register(None)))


@pytest.mark.corpus
@pytest.mark.timeout(120)
def test_check_shrink_writes_a_history_that_check_reads_and_still_calls_invalid(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require_corpus()
    out = tmp_path / "evidence.jsonl"
    source = str(CORPUS / "porcupine-etcd" / "etcd_000.log")
    assert main(["check", source, "--model", "cas-register", "--init", "nil", "--shrink", str(out)]) == 1
    assert "shrunk from 85 to" in capsys.readouterr().out
    assert main(["check", str(out), "--model", "cas-register", "--init", "nil"]) == 1
    assert main(["check", source, source, "--model", "cas-register", "--shrink", str(out)]) == 3
