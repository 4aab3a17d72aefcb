"""Proxy-task selection logic (orchestrator/proxy.py): pure, no Ray."""
from __future__ import annotations

import dataclasses
import math

import pytest

from orchestrator.proxy import (ProxyCandidate, ProxyChoice, kendall_tau, select_proxy,
                                variance_check)
from spaces.errors import ArchtuneError

REF = [0.50, 0.60, 0.70, 0.80, 0.90, 0.95]          # 6 reference models, ranked 0 < 1 < ... < 5
PERFECT = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]             # same ranking (tau = 1)
REVERSED = PERFECT[::-1]                              # tau = -1
ONE_SWAP = [0.2, 0.1, 0.3, 0.4, 0.5, 0.6]            # tau = 13/15 = 0.867
THREE_SWAPS = [0.2, 0.1, 0.4, 0.3, 0.6, 0.5]         # tau = 9/15 = 0.6


def _cand(steps: list[list[float]], cost: float, **settings) -> ProxyCandidate:
    """steps[s] = the 6 models' scores at step s+1 -> per-model rows."""
    return ProxyCandidate(settings=settings, scores=[list(r) for r in zip(*steps)], cost=cost)


def test_kendall_tau_matches_known_values():
    assert kendall_tau(PERFECT, REF) == pytest.approx(1.0)
    assert kendall_tau(REVERSED, REF) == pytest.approx(-1.0)
    assert kendall_tau(ONE_SWAP, REF) == pytest.approx(13 / 15)
    assert kendall_tau(THREE_SWAPS, REF) == pytest.approx(0.6)
    assert math.isnan(kendall_tau([1.0], [2.0]))
    assert math.isnan(kendall_tau([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="kendall_tau needs equally long lists, got 2 and 3"):
        kendall_tau([1, 2], [1, 2, 3])


def test_cheapest_successful_candidate_is_chosen_with_its_stopping_step():
    # A: cheap per step but never reaches the target; B: succeeds at step 3 (cost 3 x 1 = 3);
    # C: succeeds at step 1 but costs 5 per step; D: succeeds at step 2, cost 2 x 1.2 = 2.4
    a = _cand([REVERSED, THREE_SWAPS, THREE_SWAPS], 0.5, data_fraction=0.1, epochs=3)
    b = _cand([REVERSED, THREE_SWAPS, ONE_SWAP, PERFECT], 1.0, data_fraction=0.25, epochs=4)
    c = _cand([PERFECT, PERFECT], 5.0, data_fraction=1.0, epochs=2)
    d = _cand([THREE_SWAPS, ONE_SWAP, PERFECT], 1.2, data_fraction=0.5, epochs=3)
    choice = select_proxy([a, b, c, d], REF, target_tau=0.65, min_valid=5)
    assert isinstance(choice, ProxyChoice)
    assert choice.settings == {"data_fraction": 0.5, "epochs": 3}
    assert choice.steps == 2                       # stops at the first step with tau >= 0.65
    assert choice.tau == pytest.approx(13 / 15)
    assert choice.cost == pytest.approx(2.4)
    rows = choice.table
    assert [r["chosen"] for r in rows] == [False, False, False, True]
    assert rows[0]["stop_step"] is None and rows[0]["cost"] is None
    assert rows[0]["best_tau"] == pytest.approx(0.6) and rows[0]["best_step"] == 2
    assert rows[1]["stop_step"] == 3 and rows[1]["cost"] == pytest.approx(3.0)
    assert rows[2]["stop_step"] == 1 and rows[2]["cost"] == pytest.approx(5.0)
    assert rows[3]["taus"] == pytest.approx([0.6, 13 / 15, 1.0])
    with pytest.raises(dataclasses.FrozenInstanceError):
        choice.steps = 3  # type: ignore[misc]
    assert choice.to_dict()["settings"] == {"data_fraction": 0.5, "epochs": 3}


def test_a_lower_target_picks_a_cheaper_candidate():
    a = _cand([REVERSED, THREE_SWAPS], 0.5, name="a")
    d = _cand([THREE_SWAPS, ONE_SWAP, PERFECT], 1.2, name="d")
    assert select_proxy([a, d], REF, target_tau=0.6).settings == {"name": "a"}
    assert select_proxy([a, d], REF, target_tau=0.65).settings == {"name": "d"}


def test_equal_cost_prefers_higher_tau_then_order():
    x = _cand([ONE_SWAP], 1.0, name="x")
    y = _cand([PERFECT], 1.0, name="y")
    z = _cand([PERFECT], 1.0, name="z")
    assert select_proxy([x, y, z], REF).settings == {"name": "y"}


def test_steps_with_too_few_valid_models_do_not_count():
    nan = float("nan")
    # step 1: only 4 of 6 models valid (< min_valid 5); step 2: 5 of 6 valid, ranking perfect
    s1 = [0.1, 0.2, 0.3, 0.4, nan, None]
    s2 = [0.1, 0.2, 0.3, 0.4, 0.5, nan]
    cand = _cand([s1, s2], 1.0, name="partial")
    choice = select_proxy([cand], REF, min_valid=5, min_valid_fraction=0.7)
    assert choice.steps == 2 and choice.table[0]["taus"][0] is None
    # 5 of 6 valid is below a 90 % validity requirement: no step counts
    with pytest.raises(ArchtuneError, match="too few valid models"):
        select_proxy([cand], REF, min_valid=5, min_valid_fraction=0.9)
    # rows may be short (a model stopped early): missing steps are invalid
    short = ProxyCandidate({"name": "short"}, [[0.1, 0.1], [0.2, 0.2], [0.3, 0.3], [0.4, 0.4],
                                               [0.5, 0.5], [0.6]], cost=1.0)
    assert select_proxy([short], REF, min_valid=5).steps == 1


def test_no_successful_candidate_raises_listing_best_tau_per_candidate():
    a = _cand([REVERSED, THREE_SWAPS], 0.5, data_fraction=0.1)
    b = _cand([REVERSED], 1.0, data_fraction=0.2)
    with pytest.raises(ArchtuneError) as e:
        select_proxy([a, b], REF, target_tau=0.65)
    msg = str(e.value)
    assert "no proxy candidate reached Kendall tau >= 0.65" in msg
    assert "{'data_fraction': 0.1}: best tau 0.600 at step 2" in msg
    assert "{'data_fraction': 0.2}: best tau -1.000 at step 1" in msg


def test_bad_arguments_are_rejected():
    good = _cand([PERFECT], 1.0)
    with pytest.raises(ArchtuneError, match="reference scores"):
        select_proxy([good], REF[:5])
    with pytest.raises(ArchtuneError, match="target_tau"):
        select_proxy([good], REF, target_tau=1.5)
    with pytest.raises(ArchtuneError, match="min_valid"):
        select_proxy([good], REF, min_valid=1)
    with pytest.raises(ArchtuneError, match="at least one"):
        select_proxy([], REF)
    with pytest.raises(ArchtuneError, match="cost"):
        ProxyCandidate({}, [[0.1]], cost=-1)


def test_variance_check_uses_the_coefficient_of_variation():
    ok = variance_check([0.80, 0.82, 0.78, 0.81])
    assert ok and ok.passed and ok.cv == pytest.approx(0.0214, abs=1e-3)
    noisy = variance_check([0.1, 0.9, 0.2, 0.8])
    assert not noisy and noisy.cv > 0.4
    assert variance_check([0.1, 0.9, 0.2, 0.8], max_cv=1.0)     # configurable threshold
    assert variance_check([0.5, float("nan"), 0.5]).cv == 0.0  # nan ignored
    for bad in ([0.5], [0.0, 0.0], [float("nan"), 1.0]):
        with pytest.raises(ArchtuneError):
            variance_check(bad)
    with pytest.raises(ArchtuneError, match="max_cv"):
        variance_check([1.0, 2.0], max_cv=0)
