"""Objectives: parameter count, FLOPs, latency, rewards and Pareto fronts."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from trainers.errors import TrainerError
from trainers.nas import objectives as obj


def test_params_match_numel_sum():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Flatten(), nn.LazyLinear(4))
    model(torch.zeros(1, 3, 8, 8))
    assert obj.count_params(model) == sum(p.numel() for p in model.parameters())
    model[0].weight.requires_grad_(False)
    assert obj.count_params(model, trainable_only=True) == obj.count_params(model) - 8 * 3 * 9


def test_flops_linear_formula():
    lin = nn.Linear(20, 30)
    assert obj.count_flops(lin, (1, 20)) == 2 * 20 * 30
    assert obj.count_flops(lin, (4, 20)) == 4 * 2 * 20 * 30


@pytest.mark.parametrize("groups,stride,padding", [(1, 1, 1), (4, 2, 0), (8, 1, 2)])
def test_flops_conv_formula(groups, stride, padding):
    cin, cout, k, h = 8, 16, 3, 12
    conv = nn.Conv2d(cin, cout, k, stride=stride, padding=padding, groups=groups)
    ho = (h + 2 * padding - k) // stride + 1
    expected = 2 * ho * ho * cout * (cin // groups) * k * k
    assert obj.count_flops(conv, (1, cin, h, h)) == expected


def test_flops_restores_training_mode():
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout())
    model.train()
    obj.count_flops(model, (1, 4))
    assert model.training


def test_latency_positive_median_and_mode_restored():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    model.train()
    ms = obj.measure_latency(model, (1, 3, 16, 16), warmup=1, repeats=5)
    assert ms > 0 and math.isfinite(ms)
    assert model.training
    with pytest.raises(TrainerError, match="repeats must be >= 1, got 0"):
        obj.measure_latency(model, (1, 3, 16, 16), repeats=0)


class _Sleeper(nn.Module):
    """Each call sleeps the next of ``delays`` seconds (cycling)."""

    def __init__(self, delays):
        super().__init__()
        self.delays, self.calls = list(delays), 0

    def forward(self, x):
        import time

        time.sleep(self.delays[self.calls % len(self.delays)])
        self.calls += 1
        return x


def test_latency_min_is_the_fastest_call():
    slow_twice = [0.002, 0.06, 0.06]
    assert obj.measure_latency(_Sleeper(slow_twice), (1, 2), warmup=0, repeats=3) >= 60
    assert 2 <= obj.measure_latency(_Sleeper(slow_twice), (1, 2), warmup=0, repeats=3,
                                    stat="min") < 60
    with pytest.raises(TrainerError, match="latency stat must be one of median, min"):
        obj.measure_latency(_Sleeper([0.0]), (1, 2), stat="mean")


def test_model_objectives_keys():
    out = obj.model_objectives(nn.Linear(3, 2), (1, 3), warmup=0, repeats=2)
    assert out["params"] == 8 and out["flops"] == 12 and out["latency_ms"] > 0
    assert "latency_ms" not in obj.model_objectives(nn.Linear(3, 2), (1, 3), latency=False)


def test_soft_reward_formula():
    assert obj.soft_reward(0.8, 10.0, 10.0) == pytest.approx(0.8)
    assert obj.soft_reward(0.8, 20.0, 10.0) == pytest.approx(0.8 * 0.5**0.07)
    assert obj.soft_reward(0.8, 5.0, 10.0) == pytest.approx(0.8 * 2**0.07)
    assert obj.soft_reward(0.8, 20.0, 10.0, w=0.5) == pytest.approx(0.8 * 0.5**0.5)
    assert obj.reward(0.8, 20.0, 10.0, "soft") == obj.soft_reward(0.8, 20.0, 10.0)


def test_hard_reward_formula():
    assert obj.hard_reward(0.8, 5.0, 10.0) == pytest.approx(0.8)
    assert obj.hard_reward(0.8, 20.0, 10.0) == pytest.approx(0.4)
    assert obj.reward(0.8, 40.0, 10.0, "hard") == pytest.approx(0.2)
    with pytest.raises(TrainerError, match="reward kind must be 'soft' or 'hard', got 'medium'"):
        obj.reward(0.8, 1.0, 1.0, "medium")
    with pytest.raises(TrainerError, match="latency target must be a positive finite number"):
        obj.hard_reward(0.8, 1.0, 0.0)


def test_mnasnet_general_form_matches_soft_and_hard():
    for lat in (2.0, 10.0, 30.0):
        assert obj.mnasnet_reward(0.7, lat, 10.0) == pytest.approx(obj.soft_reward(0.7, lat, 10.0))
        assert obj.mnasnet_reward(0.7, lat, 10.0, alpha=0.0, beta=-1.0) == pytest.approx(
            obj.hard_reward(0.7, lat, 10.0)
        )


def test_pareto_front_two_objectives():
    pts = [
        {"id": 0, "acc": 0.9, "lat": 5.0},
        {"id": 1, "acc": 0.8, "lat": 3.0},
        {"id": 2, "acc": 0.7, "lat": 4.0},  # dominated by 1
        {"id": 3, "acc": 0.9, "lat": 6.0},  # dominated by 0
        {"id": 4, "acc": 0.95, "lat": 9.0},
        {"id": 5, "acc": 0.99},              # missing objective: ignored
        {"id": 6, "acc": float("nan"), "lat": 1.0},
    ]
    front = obj.pareto_front(pts, {"acc": "max", "lat": "min"})
    assert [p["id"] for p in front] == [0, 1, 4]
    front2 = obj.pareto_front(pts, [("acc", "max"), ("lat", "min")])
    assert front2 == front


def test_pareto_front_single_objective_and_ties():
    pts = [{"a": 1}, {"a": 3}, {"a": 3}, {"a": 2}]
    assert obj.pareto_front(pts, ["a"]) == [{"a": 3}, {"a": 3}]
    with pytest.raises(TrainerError, match="objective 'a': mode must be 'max' or 'min'"):
        obj.pareto_front(pts, {"a": "up"})
    with pytest.raises(TrainerError, match="needs at least one objective"):
        obj.pareto_front(pts, {})


def test_pareto_front_random_points_are_non_dominated():
    g = torch.Generator().manual_seed(0)
    vals = torch.rand(60, 3, generator=g).tolist()
    pts = [{"x": a, "y": b, "z": c} for a, b, c in vals]
    modes = {"x": "max", "y": "min", "z": "max"}
    front = obj.pareto_front(pts, modes)
    key = lambda p: (p["x"], -p["y"], p["z"])
    for p in pts:
        dominated = any(obj.dominates(key(q), key(p)) for q in pts)
        assert (p in front) == (not dominated)
