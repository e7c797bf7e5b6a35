"""Every verdict in the shared corpus, with the model and initial value its manifest names."""

from __future__ import annotations

import pytest
from splitbrain.checkers.linearizable import check_linearizable
from splitbrain.checkers.models import cas_register, kv, multi_register
from splitbrain.histories.formats import load_history

from tests.corpus import CORPUS, corpus_files, require_corpus

FOLDERS = {
    # folder: model factory, as each manifest's "model" says
    "porcupine-etcd": lambda: cas_register(None),
    "porcupine-kv": lambda: kv(""),
    "knossos-cas-register": lambda: cas_register(0),
    "knossos-multi-register": lambda: multi_register({"x": 0, "y": 0}),
}
CASES = [(folder, name, entry["expected"]) for folder in FOLDERS for name, entry in corpus_files(folder)]


@pytest.mark.corpus
@pytest.mark.parametrize(("folder", "name", "expected"), CASES or [pytest.param("", "", "", marks=pytest.mark.skip(
    reason=f"the shared corpus is absent ({CORPUS})"))])
def test_corpus_verdict(folder: str, name: str, expected: str) -> None:
    require_corpus()
    history = load_history(str(CORPUS / folder / name))
    result = check_linearizable(history, FOLDERS[folder](), time_limit=120)
    assert result.valid is (expected == "valid"), result.explanation


@pytest.mark.corpus
def test_corpus_is_complete() -> None:
    """The manifests list as many verdicts as the corpus README promises (guards against a silent skip)."""
    require_corpus()
    counts = {folder: len(corpus_files(folder)) for folder in FOLDERS}
    assert counts == {"porcupine-etcd": 52, "porcupine-kv": 4, "knossos-cas-register": 55,
                      "knossos-multi-register": 1}


@pytest.mark.corpus
def test_invalid_etcd_history_is_explained() -> None:
    require_corpus()
    result = check_linearizable(load_history(str(CORPUS / "porcupine-etcd" / "etcd_000.log")), cas_register(None))
    assert result.valid is False
    failure = result.details["failure"]
    assert failure["op"]["f"] == "read" and failure["op"]["value"] == 2
    assert failure["final_states"] and "2" not in failure["final_states"]
    assert failure["longest_linearized_prefix"] == len(failure["partial_linearization"]) > 0
    assert "cannot linearize" in result.explanation and "process 11 read" in result.explanation
