"""The checker agrees with a brute-force search on small random histories, for every model."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from splitbrain.checkers import wgl
from splitbrain.checkers.linearizable import check_linearizable

from tests.unit.linearizability_gen import MODELS, brute_force_linearizable, random_history


@pytest.fixture(params=["native", "python-first-attempt", "python-full-prunings"])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every property runs with the compiled search, and twice with the pure-Python one: as the checker
    runs it (a cheap first attempt), and with every pruning from the first step (small histories would
    otherwise never reach the symmetry masks)."""
    if request.param == "python-full-prunings":
        monkeypatch.setattr(wgl, "FIRST_ATTEMPT_STEPS", None)
    return request.param.split("-")[0]


@pytest.mark.parametrize("name", sorted(MODELS))
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), n_ops=st.integers(1, 8), n_procs=st.integers(1, 4),
       p_corrupt=st.sampled_from([0.0, 0.1, 0.3]))
def test_agrees_with_brute_force(engine: str, name: str, seed: int, n_ops: int, n_procs: int,
                                 p_corrupt: float) -> None:
    model = MODELS[name]()
    h = random_history(model, random.Random(seed), n_ops=n_ops, n_procs=n_procs, p_corrupt=p_corrupt,
                       keys="ab" if name == "kv" else "")
    expected = brute_force_linearizable(h, model)
    assert check_linearizable(h, model, engine=engine).valid is expected
    assert check_linearizable(h, model, prune=False).valid is expected  # the benchmark's baseline


@pytest.mark.parametrize("name", sorted(MODELS))
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), n_ops=st.integers(1, 40), n_procs=st.integers(1, 6))
def test_histories_of_a_real_object_are_linearizable(engine: str, name: str, seed: int, n_ops: int,
                                                      n_procs: int) -> None:
    model = MODELS[name]()
    h = random_history(model, random.Random(seed), n_ops=n_ops, n_procs=n_procs, p_corrupt=0.0,
                       keys="abc" if name == "kv" else "")
    result = check_linearizable(h, model, engine=engine)
    assert result.valid is True, result.explanation


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_generator_makes_both_verdicts(name: str) -> None:
    """Guard against a generator that only makes valid histories (the agreement test would be vacuous)."""
    model = MODELS[name]()
    verdicts = [brute_force_linearizable(random_history(model, random.Random(s), n_ops=7, p_corrupt=0.3,
                                                        keys="ab" if name == "kv" else ""), model)
                for s in range(200)]
    assert 10 < verdicts.count(False) < 190


@pytest.mark.parametrize("name", ["register", "cas-register", "mutex", "kv"])
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), n_ops=st.integers(6, 10), p_info=st.sampled_from([0.4, 0.7]))
def test_agrees_with_brute_force_when_most_ops_are_indeterminate(engine: str, name: str, seed: int, n_ops: int,
                                                                   p_info: float) -> None:
    """Prunings 1, 5 and 6 are about info ops: many of them, in longer histories."""
    model = MODELS[name]()
    h = random_history(model, random.Random(seed), n_ops=n_ops, n_procs=4, p_corrupt=0.2, p_info=p_info,
                       keys="ab" if name == "kv" else "")
    assert check_linearizable(h, model, engine=engine).valid is brute_force_linearizable(h, model)
