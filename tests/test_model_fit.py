"""Any model at any image size (trainers/model_fit.py) and the up-front experiment checks."""
from __future__ import annotations

import pytest
import torch

from orchestrator.spec import Experiment, SpecError
from spaces.library import SPACES
from spaces.library.quicktune import CPU_MODELS
from trainers.api import LocalContext
from trainers.errors import TrainerError
from trainers.finetune import FineTuner
from trainers.model_fit import check_finetune_experiment, check_models, fit_model, native_size

torch.set_num_threads(1)


def test_fit_builds_for_the_size_or_resizes_to_the_nearest_accepted():
    assert fit_model("resnet10t", None).input_size == 176  # native
    vit = fit_model("test_vit", 32)
    assert (vit.how, dict(vit.create_kwargs), vit.input_size) == ("img_size", {"img_size": 32}, 32)
    padded = fit_model("test_vit", 24)  # patch 16 does not divide 24
    assert padded.create_kwargs == {"img_size": 24, "dynamic_img_pad": True}
    conv = fit_model("test_convnext", 16)  # a 2x2 kernel on a 1x1 map: 16 px cannot run
    assert (conv.how, conv.input_size, conv.ok) == ("resized", 32, True)
    assert fit_model("resnet10t", 24).how == "as_is"


def test_native_size_follows_deprecated_names():
    assert native_size("tf_efficientnet_b7_ns") == 600  # now tf_efficientnet_b7.ns_jft_in1k
    assert fit_model("xcit_nano_12_p8_384_dist", None).input_size == 384


def test_unknown_model_is_named_with_close_matches():
    with pytest.raises(TrainerError, match="resnet10t"):
        fit_model("resnet10tt", 32)
    [(name, why)] = check_models(["resnet10t", "resnet10tt"], 32)
    assert name == "resnet10tt" and "unknown timm model" in why


@pytest.mark.parametrize("size", [16, 24, 32, 64])
@pytest.mark.parametrize("model", CPU_MODELS)
def test_every_cpu_model_trains_one_step(tmp_path, model, size):
    ctx = LocalContext(tmp_path, seed=0, max_epochs=1, num_cpus=1, echo=False, tensorboard=False)
    ft = FineTuner({"model": model, "image_size": size, "batch-size": 16, "data_fraction": 0.05,
                    "lr": 1e-3}, ctx)
    x, y = next(iter(ft.train_loader))
    side = fit_model(model, size).input_size
    assert x.shape[-2:] == (side, side)
    assert next(iter(ft.val_loader))[0].shape[-2:] == (side, side)
    before = [p.detach().clone() for p in ft.model.parameters()]
    loss = ft.train_step(ft._to_device(x), y)
    assert torch.isfinite(loss)
    assert any(not torch.equal(a, p) for a, p in zip(before, ft.model.parameters()))
    assert ft._metrics(0, 1.0, 1.0, 0.5, 1e-3, 0.0, 1, 1.0, 0)["input_size"] == side


def _space(models):
    return SPACES.create("quicktune_cpu", models=models)


def test_searched_model_that_cannot_run_is_listed_with_how_to_exclude():
    space = _space(("resnet10t", "no_such_model_xyz")).with_fixed({"cotuning-reg": 0.0})
    with pytest.raises(TrainerError, match=r"1 of the 2 models.*no_such_model_xyz.*exclude"):
        check_finetune_experiment({"image_size": 24}, space)
    check_finetune_experiment({"image_size": 24}, _space(("resnet10t", "test_vit"))
                              .with_fixed({"cotuning-reg": 0.0}))


def test_cotuning_without_pretrained_source_is_rejected_up_front():
    space = _space(("resnet10t",))
    with pytest.raises(TrainerError, match=r"cotuning-reg can be > 0.*fixed: \{cotuning-reg: 0.0\}"):
        check_finetune_experiment({"image_size": 32, "pretrained": False}, space)
    check_finetune_experiment({"image_size": 32, "pretrained": True}, space)
    check_finetune_experiment({"image_size": 32}, space.with_fixed({"cotuning-reg": 0.0}))


def test_experiment_validation_rejects_before_any_trial():
    base = dict(name="fit", space="quicktune_cpu", trainer="finetune",
                data={"dataset": "digits", "image_size": 24}, num_samples=2, max_epochs=2,
                searcher={"type": "random", "seed": 0})
    with pytest.raises(SpecError, match=r"space.*cotuning-reg can be > 0"):
        Experiment(**base, fixed={"model": "test_resnet"}).validate()
    Experiment(**base, fixed={"model": "test_vit", "cotuning-reg": 0.0}).validate()
