"""Each knob changes what it says it changes (behaviour, not attributes)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from trainers.api import LocalContext
from trainers.config import TrainerConfig
from trainers.finetune import FineTuner
from trainers.finetune_factory import create_criterion
from trainers.transforms import augmentation_op

torch.set_num_threads(1)


def _mixup(**knobs):
    return create_criterion(TrainerConfig.from_dict(knobs), num_classes=4)


def _lams(mixup, n=400):
    np.random.seed(0)
    return np.array([mixup._params_per_batch()[0] for _ in range(n)])


def test_mixup_alpha_changes_the_mixing_weight_distribution():
    _, low = _mixup(mixup=0.2)
    _, high = _mixup(mixup=8.0)
    low_l, high_l = _lams(low), _lams(high)
    # Beta(0.2, 0.2) piles up near 0 and 1; Beta(8, 8) near 0.5
    assert np.mean(np.abs(low_l - 0.5)) > 0.3
    assert np.mean(np.abs(high_l - 0.5)) < 0.1


def test_cutmix_pastes_a_box_of_the_other_image():
    _, cutmix = _mixup(cutmix=1.0)
    x = torch.arange(4, dtype=torch.float32).view(4, 1, 1, 1).expand(4, 3, 32, 32).clone()
    y = torch.arange(4)
    np.random.seed(0)
    for _ in range(20):  # a draw with a box strictly inside the image
        mixed, target = cutmix(x.clone(), y)
        changed = (mixed[0] != x[0]).any(0)
        if changed.any() and not changed.all():
            break
    rows, cols = changed.any(1).nonzero().flatten(), changed.any(0).nonzero().flatten()
    assert changed.any() and not changed.all()
    box = changed[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    assert box.all()  # one rectangle ...
    assert torch.all(mixed[0][:, changed] == x[3][:, changed])  # ... of the flipped partner
    assert target[0, 3] == pytest.approx(changed.float().mean().item(), abs=1e-6)


def test_smoothing_changes_the_target_distribution():
    crit, _ = _mixup(smoothing=0.1)
    plain, _ = _mixup()
    logits = torch.tensor([[20.0, 0.0, 0.0, 0.0]])
    y = torch.tensor([0])
    assert plain(logits, y).item() < 1e-6
    logp = torch.log_softmax(logits, 1)
    expected = -(0.9 * logp[0, 0] + 0.1 * logp[0].mean())
    assert crit(logits, y).item() == pytest.approx(expected.item(), rel=1e-5)
    _, mix = _mixup(mixup=1.0, smoothing=0.1)
    _, soft = mix(torch.zeros(2, 3, 8, 8), torch.tensor([0, 1]))
    assert soft.min().item() >= 0.1 / 4 - 1e-6


def _ft(tmp_path, **knobs):
    ctx = LocalContext(tmp_path, seed=0, max_epochs=1, num_cpus=1, echo=False, tensorboard=False)
    return FineTuner({"model": "test_resnet", "image_size": 16, "data_fraction": 0.1,
                      **knobs}, ctx)


def test_drop_changes_training_mode_outputs(tmp_path):
    for drop, same in ((0.0, True), (0.4, False)):
        ft = _ft(tmp_path / str(drop), drop=drop, **{"batch-size": 16})
        x, _ = next(iter(ft.train_loader))
        ft.model.train()
        with torch.no_grad():
            assert torch.equal(ft.model(x), ft.model(x)) == same


def test_batch_size_sets_the_loader_batch(tmp_path):
    for bs in (16, 32):
        ft = _ft(tmp_path / str(bs), **{"batch-size": bs})
        assert len(next(iter(ft.train_loader))[0]) == bs


def _ops(policy):
    op = augmentation_op({"data-augmentation": "auto-augment", "auto-augment": policy}, 32,
                         (0.5, 0.5, 0.5))
    return {o.name for sub in op.policy for o in sub}


def test_autoaugment_v0_and_original_have_different_op_sets():
    v0, original = _ops("v0"), _ops("original")
    assert v0 != original
    assert "SolarizeAdd" in v0 and "SolarizeAdd" not in original


def test_randaugment_magnitude_changes_op_strength():
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    base = np.asarray(img, dtype=np.float32)

    def strength(magnitude):
        op = augmentation_op({"data-augmentation": "random-augment", "ra-num-ops": 1,
                              "ra-magnitude": magnitude}, 32, (0.5, 0.5, 0.5))
        torch.manual_seed(0)
        return np.mean([np.abs(np.asarray(op(img), dtype=np.float32) - base).mean()
                        for _ in range(200)])

    assert strength(0) < strength(9) < strength(17)
