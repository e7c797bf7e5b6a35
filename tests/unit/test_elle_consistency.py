"""Which consistency models forbid which anomalies."""

from __future__ import annotations

import pytest
from splitbrain.checkers.elle.consistency import (
    IMPLIED_ANOMALIES,
    IMPLIED_MODELS,
    MODELS,
    canonical_model,
    forbidden_anomalies,
    impossible_models,
    weakest_models,
)

ALL_ANOMALIES = sorted(set(IMPLIED_ANOMALIES) | {a for bs in IMPLIED_ANOMALIES.values() for a in bs}
                       | {"internal", "garbage-read", "duplicate-elements", "cyclic-versions"})


@pytest.mark.parametrize("model, forbids, allows", [
    ("read-uncommitted", ["G0", "garbage-read", "duplicate-elements"], ["G1a", "G1c", "G-single"]),
    ("read-committed", ["G0", "G1a", "G1b", "G1c", "incompatible-order", "future-read"],
     ["G-single", "G2-item", "internal"]),
    ("repeatable-read", ["G1c", "G2-item", "G-single", "G-nonadjacent"], ["internal", "G2-item-realtime"]),
    ("snapshot-isolation", ["G-single", "G-nonadjacent", "internal", "G1b"], ["G2-item", "G-single-process"]),
    ("serializable", ["G2-item", "G-single", "internal", "G0"], ["G-single-realtime", "G2-item-process"]),
    ("strong-session-serializable", ["G2-item-process", "G1c-process"], ["G2-item-realtime"]),
    ("strict-serializable", ["G-single-realtime", "G2-item-realtime", "G0-process", "G1a"], []),
])
def test_what_each_model_forbids(model, forbids, allows):
    forbidden = forbidden_anomalies(model)
    assert set(forbids) <= forbidden
    assert not set(allows) & forbidden


def test_a_stronger_model_forbids_everything_a_weaker_one_does():
    for model, weaker in IMPLIED_MODELS.items():
        for w in weaker:
            assert forbidden_anomalies(w) <= forbidden_anomalies(model), (model, w)


@pytest.mark.parametrize("anomaly", ALL_ANOMALIES)
def test_impossible_models_agree_with_forbidden_anomalies(anomaly):
    impossible = impossible_models([anomaly])
    assert impossible == {m for m in MODELS if anomaly in forbidden_anomalies(m)}


@pytest.mark.parametrize("anomalies, weakest", [
    (["G0"], ["read-uncommitted"]),
    (["G2-item"], ["repeatable-read"]),
    (["G-single"], ["consistent-view", "repeatable-read"]),
    (["G-nonadjacent"], ["repeatable-read", "snapshot-isolation"]),
    (["internal"], ["snapshot-isolation"]),
    (["G-single-realtime"], ["strong-snapshot-isolation"]),
    (["G2-item-realtime"], ["strict-serializable"]),
    ([], []),
])
def test_weakest_models_ruled_out(anomalies, weakest):
    assert weakest_models(impossible_models(anomalies)) == weakest


def test_aliases_and_unknown_names():
    assert canonical_model("PL-3") == "serializable"
    assert canonical_model("strong-serializable") == "strict-serializable"
    with pytest.raises(ValueError, match="known: "):
        canonical_model("linearizable-ish")
