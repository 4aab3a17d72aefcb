"""The timm fine-tuning trainer: ``train(config, ctx)``.

Every Quick-Tune knob (REFERENCE.md section 1) is real:

- model from ``timm.create_model(model, drop_rate=drop)``; ``pretrained`` is ``False``, ``True``
  (timm hub weights) or a path to a local checkpoint (``torch.load(weights_only=True)``; a
  ``state_dict``, or a dict holding one under ``"state_dict"``/``"model"``). The classifier is
  replaced when the class count differs; the pretrained classifier is kept as Co-Tuning's
  source head.
- ``pct-to-freeze`` / ``linear-probing`` (:mod:`trainers.freezing`); linear probing trains the
  head alone for ``ctx.max_epochs // 2`` epochs (none when ``max_epochs`` is 1), then the
  optimiser is rebuilt over the newly trainable parameters, keeping the head's optimiser state
  and the LR schedule position.
- ``layer-decay`` / ``opt`` / ``sched`` / ``warmup*`` (:mod:`trainers.optim`, timm factories on the
  timm model itself, never on a wrapper).
- ``stoch-norm``, ``sp-reg``, ``delta-reg``, ``bss-reg``, ``cotuning-reg``
  (:mod:`trainers.stochnorm`, :mod:`trainers.regularizers`). ``cotuning-reg > 0`` without a
  pretrained classifier (``pretrained`` false) is rejected with a :class:`TrainerError` before
  any training.
- ``mixup``/``cutmix``/``mixup-prob``/``smoothing`` (timm ``Mixup`` + ``SoftTargetCrossEntropy``,
  else label-smoothing CE), ``clip-grad`` (global norm, unscaled first under AMP), ``amp``
  (bf16 autocast on CPU and on CUDA when supported, else fp16 with a ``GradScaler``).
- ``data-augmentation`` & co (:mod:`trainers.augment`).

Each epoch reports ``epoch, train_loss, val_loss, val_acc, lr, epoch_time_s,
train_images_per_s, diverged`` and, every ``checkpoint_every`` epochs, a full checkpoint
(:mod:`trainers.checkpoint`). A NaN/inf loss reports once with ``diverged=1`` and returns.
Resuming from ``ctx.restore_dir`` continues bit-for-bit (deterministic CPU mode). Resuming
under a mutated config (a PBT exploit) keeps the weights and each parameter's optimiser state,
mapped by parameter name when the new config groups the parameters differently, and applies the
new config's optimiser hyperparameters and schedule.
"""
from __future__ import annotations

import math
import os
import random
import shutil
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trainers.errors import TrainerError

from . import freezing
from .api import TrialContext
from .checkpoint import load_optimizer_state, read_checkpoint, restore_rng_state, save_checkpoint
from .config import TrainerConfig
from .optim import create_optimizer, create_scheduler, current_lr, rebuild_optimizer

__all__ = ["train", "FineTuner", "build_model", "WORST_LOSS"]

WORST_LOSS = 1e9  # reported val_loss/train_loss of a diverged trial
_NAN_CHECK_EVERY = 25  # steps between finiteness checks of the running loss


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise TrainerError(f"device: expected 'auto', 'cpu' or 'cuda[:N]', got {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainerError("device: 'cuda' requested but CUDA is not available")
    return device


def _load_state_dict(path: str) -> dict[str, torch.Tensor]:
    p = Path(path).expanduser()
    if p.is_dir():
        candidates = [p / n for n in ("state.pt", "model.pt", "pytorch_model.bin", "checkpoint.pt")]
        p = next((c for c in candidates if c.is_file()), p)
    if not p.is_file():
        raise TrainerError(f"pretrained: checkpoint {str(path)!r} not found")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(p))
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise TrainerError(f"pretrained: cannot read {str(p)!r} as a weights-only checkpoint: {exc}") from exc
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict):
        raise TrainerError(f"pretrained: {str(p)!r} holds no state_dict")
    return {k.removeprefix("module."): v for k, v in state.items()}


def build_model(cfg: TrainerConfig) -> tuple[nn.Module, nn.Module | None]:
    """``(model, source_head)``: the timm model with pretrained weights as configured, and the
    pretrained classifier (a deep copy) when there is one. The classifier is *not* yet sized to
    the target task; :class:`FineTuner` does that once the data set is known."""
    import timm

    try:
        if cfg.pretrained is True:
            model = timm.create_model(cfg.model, pretrained=True, drop_rate=cfg.drop)
        else:
            kwargs: dict[str, Any] = {"drop_rate": cfg.drop}
            if cfg.num_classes is not None and not isinstance(cfg.pretrained, str):
                kwargs["num_classes"] = cfg.num_classes
            model = timm.create_model(cfg.model, pretrained=False, **kwargs)
    except RuntimeError as exc:
        if "Unknown model" in str(exc) or "Invalid model" in str(exc):
            import difflib

            close = difflib.get_close_matches(cfg.model, timm.list_models(), n=3, cutoff=0.6)
            raise TrainerError(f"model: unknown timm model {cfg.model!r}; close: {close}") from None
        raise
    source_head = None
    if isinstance(cfg.pretrained, str):
        state = _load_state_dict(cfg.pretrained)
        head_names = freezing.head_parameter_names(model)
        weight_name = next((n for n in sorted(head_names) if n.endswith("weight")), None)
        if weight_name is not None and weight_name in state:
            src_classes = int(state[weight_name].shape[0])
            if src_classes != model.num_classes:
                model.reset_classifier(src_classes)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise TrainerError(
                f"pretrained: {cfg.pretrained!r} does not match timm model {cfg.model!r}: "
                f"missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}"
            )
        source_head = _copy_head(model)
    elif cfg.pretrained is True:
        source_head = _copy_head(model)
    return model, source_head


def _copy_head(model: nn.Module) -> nn.Module | None:
    import copy

    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    if isinstance(head, nn.Linear) and head.out_features > 0:
        return copy.deepcopy(head)
    return None


class FineTuner:
    """One fine-tuning run, built from a flat config and a :class:`TrialContext`.

    Building it seeds the RNGs and sets up data, model, regularisers, optimiser and scheduler;
    :meth:`fit` runs the epochs. The pieces (``compute_loss``, ``train_step``, ``mix``,
    ``evaluate``) are public so each knob can be tested on its own.
    """

    def __init__(self, config: dict | TrainerConfig, ctx: TrialContext) -> None:
        cfg = config if isinstance(config, TrainerConfig) else TrainerConfig.from_dict(dict(config))
        self.cfg, self.ctx = cfg, ctx
        self.max_epochs = int(ctx.max_epochs)
        if self.max_epochs < 1:
            raise TrainerError(f"max_epochs must be >= 1, got {ctx.max_epochs!r}")
        if cfg.cotuning_reg > 0 and cfg.pretrained is False:
            raise TrainerError(
                "cotuning-reg > 0 needs a source classifier head from a pretrained model: set "
                "'pretrained' to true (timm weights) or to a checkpoint path, or set cotuning-reg to 0"
            )
        self.logger = getattr(ctx, "logger", None)
        self.seed = int(getattr(ctx, "seed", 0))
        num_cpus = getattr(ctx, "num_cpus", None)
        if num_cpus:
            torch.set_num_threads(max(1, int(num_cpus)))
        self.device = _resolve_device(cfg.device)
        self._prev_deterministic = torch.are_deterministic_algorithms_enabled()
        if cfg.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
            if self.device.type == "cuda":
                torch.backends.cudnn.benchmark = False
        elif self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self.channels_last = self.device.type == "cuda"
        _seed_everything(self.seed)

        # model ---------------------------------------------------------------------------
        from . import augment, data

        model, source_head = build_model(cfg)
        if cfg.cotuning_reg > 0 and source_head is None:
            raise TrainerError(
                f"cotuning-reg > 0 needs a linear source classifier, but {cfg.model!r} "
                f"(pretrained={cfg.pretrained!r}) has none; set cotuning-reg to 0"
            )
        mean, std, input_size = data.resolve_data_config(model)
        image_size = int(cfg.image_size or input_size[-1])
        self.data_cfg = data.DataConfig(
            dataset=cfg.dataset, data_dir=cfg.data_dir, download=cfg.download,
            data_fraction=cfg.data_fraction, image_size=image_size, val_fraction=cfg.val_fraction,
            seed=0, num_workers=cfg.num_workers, batch_size=cfg.batch_size,
            eval_batch_size=cfg.eval_batch_size,
        )
        transform = augment.build_train_transform(cfg.to_dict(), mean=mean)
        self.train_ds, self.val_ds, num_classes = data.build_datasets(self.data_cfg, mean, std, transform)
        if cfg.num_classes is not None and cfg.num_classes != num_classes:
            raise TrainerError(
                f"num_classes: config says {cfg.num_classes} but dataset {cfg.dataset!r} has {num_classes}"
            )
        self.num_classes = num_classes
        if model.num_classes != num_classes:
            model.reset_classifier(num_classes)
        self.train_loader, self.val_loader = data.build_loaders(
            self.train_ds, self.val_ds, self.data_cfg, device=self.device, seed=self.seed
        )
        if cfg.stoch_norm:
            from .stochnorm import convert_to_stochnorm

            model = convert_to_stochnorm(model)
        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        self.model = model

        # freezing ------------------------------------------------------------------------
        self.frozen = freezing.freeze_plan(model, cfg.pct_to_freeze)
        self.probe_epochs = self.max_epochs // 2 if cfg.linear_probing else 0
        self.head_only = False
        freezing.apply_trainable(model, self.frozen)

        # regularisers (built from the starting weights) --------------------------------------
        from . import regularizers as regs

        self.l2sp = self.delta = self.cotuning = None
        if cfg.sp_reg > 0:
            head = freezing.head_parameter_names(model)
            named = [(n, p) for n, p in model.named_parameters() if n not in head and n not in self.frozen]
            self.l2sp = regs.L2SP(model, named).to(self.device)
        if cfg.delta_reg > 0:
            self.delta = regs.DeltaRegularizer(model).to(self.device)
        if cfg.cotuning_reg > 0:
            source_head = source_head.to(self.device)
            self.cotuning = regs.CoTuning(
                source_head, torch.zeros(num_classes, source_head.out_features, device=self.device)
            )
        self.need_features = cfg.delta_reg > 0 or cfg.bss_reg > 0 or cfg.cotuning_reg > 0

        # loss & mixing -----------------------------------------------------------------------
        from timm.data import Mixup
        from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy

        self.mixup_fn = None
        if cfg.mixing:
            self.mixup_fn = Mixup(
                mixup_alpha=cfg.mixup, cutmix_alpha=cfg.cutmix, prob=cfg.mixup_prob,
                switch_prob=0.5, mode="batch", label_smoothing=cfg.smoothing, num_classes=num_classes,
            )
            self.criterion: nn.Module = SoftTargetCrossEntropy()
        elif cfg.smoothing > 0:
            self.criterion = LabelSmoothingCrossEntropy(smoothing=cfg.smoothing)
        else:
            self.criterion = nn.CrossEntropyLoss()

        # AMP -----------------------------------------------------------------------------
        self.amp_dtype = None
        fp16 = False
        if cfg.amp:
            if self.device.type == "cuda" and not torch.cuda.is_bf16_supported():
                self.amp_dtype, fp16 = torch.float16, True
            else:
                self.amp_dtype = torch.bfloat16
        self.scaler = torch.amp.GradScaler("cuda", enabled=fp16) if fp16 else None

        # optimiser & schedule --------------------------------------------------------------
        self.start_epoch = 0
        self.best_metric: float | None = None
        state = None
        if ctx.restore_dir is not None:
            state = read_checkpoint(ctx.restore_dir, map_location="cpu")
            self.start_epoch = int(state["epoch"])
        # the trainable set the checkpoint's optimiser was built for (or the first epoch's)
        self._set_head_only(max(self.start_epoch - 1, 0) < self.probe_epochs)
        self.optimizer = self._make_optimizer()
        self.scheduler = create_scheduler(self.optimizer, cfg, self.max_epochs)

        if state is not None:
            self._restore(state)
        elif self.cotuning is not None:
            self._compute_relationship()

    def _restore(self, state: dict) -> None:
        """Load a checkpoint into the freshly built run. The *current* config's optimiser
        hyperparameters win over the saved ones (a PBT exploit may have mutated lr, weight-decay,
        layer-decay, momentum, betas); with an unchanged config the run continues bit-for-bit.

        The model weights are always restored. The optimiser state is restored whole when the
        parameter grouping is unchanged, else per parameter by name (weight decay switched on or
        off, or layer decay changed, regroups the parameters); see
        :func:`trainers.checkpoint.load_optimizer_state`. The epoch schedules are pure functions
        of the epoch and the config, so they are rebuilt at the resumed epoch; a plateau
        schedule keeps its saved counters and the LR factor it had applied.
        """
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as exc:
            raise TrainerError(
                f"cannot resume from {self.ctx.restore_dir}: the checkpoint's weights do not fit "
                f"model {self.cfg.model!r} as configured ({exc})"
            ) from exc
        fresh = [{k: v for k, v in g.items() if k != "params"} for g in self.optimizer.param_groups]
        how = load_optimizer_state(self.optimizer, state, self._named_parameters())
        if how in ("fresh", None):
            why = "no saved state" if how is None else "the saved optimiser does not fit"
            self._log(f"resume from {self.ctx.restore_dir}: optimiser state not restored ({why})")
        if self.scaler is not None and state.get("scaler") is not None:
            self.scaler.load_state_dict(state["scaler"])
        plateau = self.cfg.sched == "plateau"
        if how == "exact":
            for group, new in zip(self.optimizer.param_groups, fresh):
                old_lr, old_initial = float(group["lr"]), group.get("initial_lr")
                group.update(new)
                if plateau and old_initial:
                    # keep the LR factor the plateau logic applied so far, on the current base LR
                    group["lr"] = old_lr * (float(new["initial_lr"]) / float(old_initial))
        elif plateau:
            # regrouped: the groups hold the new config's values; apply the saved plateau factor
            saved_groups = (state.get("optimizer") or {}).get("param_groups") or []
            g = next((g for g in saved_groups if g.get("initial_lr")), None)
            if g is not None:
                factor = float(g["lr"]) / (float(g["initial_lr"]) * float(g.get("lr_scale", 1.0)))
                for group in self.optimizer.param_groups:
                    group["lr"] = (float(group["initial_lr"]) * float(group.get("lr_scale", 1.0))
                                   * factor)
        if plateau:
            inner = self.scheduler.lr_scheduler
            saved = (state.get("scheduler") or {}).get("inner")
            if saved is not None:
                per_group = {k: getattr(inner, k) for k in ("min_lrs", "_last_lr")
                             if hasattr(inner, k)}
                inner.load_state_dict(saved)
                for key, value in per_group.items():  # sized to the current groups
                    if len(getattr(inner, key, None) or []) != len(self.optimizer.param_groups):
                        setattr(inner, key, value)
                if how != "exact":
                    inner._last_lr = [float(g["lr"]) for g in self.optimizer.param_groups]
            if self.start_epoch <= self.scheduler.warmup_t:
                self.scheduler.step(self.start_epoch)
        else:  # timm's epoch schedules are pure functions of the epoch and the config
            self.scheduler.step(self.start_epoch)
        self.best_metric = state.get("best_metric")
        extra = state.get("extra", {})
        if self.cotuning is not None:
            if "cotuning" in extra:
                self.cotuning.load_state_dict(extra["cotuning"])
            else:  # cotuning-reg switched on by the mutation: relationship from these weights
                self._compute_relationship()
        if "loader_rng" in extra and self.train_loader.generator is not None:
            self.train_loader.generator.set_state(extra["loader_rng"].cpu())
        restore_rng_state(state["rng"])

    def _named_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """Names of everything the optimiser may train (the model and Co-Tuning's source head),
        used to carry optimiser state across checkpoints by name."""
        named = list(self.model.named_parameters())
        if self.cotuning is not None:
            named += [(f"cotuning.source_head.{n}", p)
                      for n, p in self.cotuning.source_head.named_parameters()]
        return named

    # -- setup helpers --------------------------------------------------------------------
    def _set_head_only(self, head_only: bool) -> None:
        self.head_only = head_only
        freezing.apply_trainable(self.model, self.frozen, head_only=head_only)

    def _make_optimizer(self) -> torch.optim.Optimizer:
        optimizer = create_optimizer(self.model, self.cfg)
        if self.cotuning is not None:
            # the source head is fine-tuned jointly (Co-Tuning paper); it lives outside the
            # timm model, so it gets its own groups (no weight decay on its bias)
            head = self.cotuning.source_head
            for params, wd in (([head.weight], self.cfg.weight_decay), ([head.bias], 0.0)):
                params = [p for p in params if p is not None]
                if params:
                    optimizer.add_param_group({"params": params, "weight_decay": wd, "lr_scale": 1.0})
        return optimizer

    def _compute_relationship(self) -> None:
        from . import data
        from .regularizers import compute_relationship, pre_logits

        plain_train, _, _ = data.build_datasets(self.data_cfg, *data.resolve_data_config(self.model)[:2])
        loader = torch.utils.data.DataLoader(plain_train, batch_size=self.data_cfg.resolved_eval_batch_size)
        self.model.eval()
        try:
            rel = compute_relationship(
                lambda x: pre_logits(self.model, self._to_device(x)),
                self.cotuning.source_head, loader, self.num_classes,
            )
        finally:
            self.model.train()
        self.cotuning.relationship.copy_(rel.to(self.device))

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 4 and self.channels_last:
            return x.to(self.device, non_blocking=True, memory_format=torch.channels_last)
        return x.to(self.device, non_blocking=True)

    def _autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for g in self.optimizer.param_groups for p in g["params"]]

    # -- one step -------------------------------------------------------------------------
    def mix(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mixup/CutMix ``(x, y)`` into ``(x, soft_targets)``; identity without mixing."""
        if self.mixup_fn is None:
            return x, y
        if len(x) % 2 == 0:
            return self.mixup_fn(x, y)
        from timm.data.mixup import mixup_target  # timm's Mixup needs an even batch

        return x, mixup_target(y, self.num_classes, 1.0, self.cfg.smoothing)

    def compute_loss(self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss and its parts (``task``, ``sp``, ``delta``, ``bss``, ``cotuning``) for a
        device batch ``x`` with hard labels ``y`` and training targets ``target`` (soft when
        mixing; defaults to ``y``)."""
        cfg = self.cfg
        target = y if target is None else target
        parts: dict[str, torch.Tensor] = {}
        with self._autocast():
            if self.need_features:
                from .regularizers import features_and_logits

                feats, logits = features_and_logits(self.model, x)
            else:
                feats, logits = None, self.model(x)
            loss = self.criterion(logits.float(), target)
            parts["task"] = loss.detach()
            if self.l2sp is not None:
                term = self.l2sp()
                parts["sp"] = term.detach()
                loss = loss + cfg.sp_reg * term
            if self.delta is not None:
                term = self.delta(x, feats)
                parts["delta"] = term.detach()
                loss = loss + cfg.delta_reg * term
            if cfg.bss_reg > 0:
                from .regularizers import bss_penalty

                term = bss_penalty(feats, k=1)
                parts["bss"] = term.detach()
                loss = loss + cfg.bss_reg * term
            if self.cotuning is not None:
                if target.ndim == 2:  # soft (mixed) targets: mix the relationship rows alike
                    src_logits = self.cotuning.source_head(feats).float()
                    soft = target.float() @ self.cotuning.relationship
                    term = -(soft * F.log_softmax(src_logits, dim=1)).sum(1).mean()
                else:
                    term = self.cotuning.loss(feats, y)
                parts["cotuning"] = term.detach()
                loss = loss + cfg.cotuning_reg * term
        return loss, parts

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One optimiser step on a device batch; returns the (detached) total loss. Gradients are
        left in ``.grad`` until the next step (clipped when ``clip-grad > 0``)."""
        x_in, target = self.mix(x, y)
        loss, _ = self.compute_loss(x_in, y, target)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            if self.cfg.clip_grad > 0:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.trainable_parameters(), self.cfg.clip_grad)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            if self.cfg.clip_grad > 0:
                torch.nn.utils.clip_grad_norm_(self.trainable_parameters(), self.cfg.clip_grad)
            self.optimizer.step()
        return loss.detach()

    # -- epochs ---------------------------------------------------------------------------
    def train_epoch(self) -> tuple[float, int, float]:
        """``(mean train loss, images, seconds)``; the loss is NaN/inf once it diverged."""
        self.model.train()
        total = torch.zeros((), device=self.device, dtype=torch.float64)
        images, steps = 0, 0
        start = time.perf_counter()
        for x, y in self.train_loader:
            x, y = self._to_device(x), y.to(self.device, non_blocking=True)
            try:
                loss = self.train_step(x, y)
            except torch.linalg.LinAlgError:  # BSS's SVD on non-finite features: diverged
                total += float("nan")
                break
            total += loss.double() * len(x)
            images += len(x)
            steps += 1
            if steps % _NAN_CHECK_EVERY == 0 and not math.isfinite(float(total)):
                break
        mean = float(total) / max(images, 1)
        return mean, images, time.perf_counter() - start

    @torch.no_grad()
    def evaluate(self) -> tuple[float, float]:
        """``(val_loss, val_acc)`` with plain cross-entropy."""
        self.model.eval()
        loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        correct = torch.zeros((), device=self.device, dtype=torch.int64)
        n = 0
        for x, y in self.val_loader:
            x, y = self._to_device(x), y.to(self.device, non_blocking=True)
            with self._autocast():
                logits = self.model(x)
            logits = logits.float()
            loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
            correct += (logits.argmax(1) == y).sum()
            n += len(y)
        n = max(n, 1)
        return float(loss_sum) / n, float(correct) / n

    def switch_to_full(self, epoch: int) -> None:
        """End of linear probing: unfreeze per pct-to-freeze and rebuild the optimiser (state of
        already-trained params and the schedule position carried over)."""
        self._set_head_only(False)
        self.optimizer, self.scheduler = rebuild_optimizer(
            self.model, self.cfg, self.optimizer, self.scheduler, epoch, self.max_epochs,
            factory=self._make_optimizer,
        )

    def save(self, directory: Path, epoch: int) -> Path:
        extra: dict[str, Any] = {}
        if self.train_loader.generator is not None:
            extra["loader_rng"] = self.train_loader.generator.get_state()
        if self.cotuning is not None:
            extra["cotuning"] = self.cotuning.state_dict()
        return save_checkpoint(
            directory, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler,
            scaler=self.scaler, epoch=epoch, best_metric=self.best_metric, extra=extra,
            named_parameters=self._named_parameters(),
        )

    def _log(self, msg: str) -> None:
        if self.logger is not None:
            self.logger.info(msg)

    def fit(self) -> list[dict]:
        """Run epochs ``start_epoch .. max_epochs-1``; returns the reported metric dicts."""
        cfg, ctx = self.cfg, self.ctx
        reported: list[dict] = []
        try:
            for epoch in range(self.start_epoch, self.max_epochs):
                if self.head_only and epoch >= self.probe_epochs:
                    self.switch_to_full(epoch)
                    self._log(f"epoch {epoch + 1}: linear probing over, backbone unfrozen")
                lr = current_lr(self.optimizer)
                epoch_start = time.perf_counter()
                train_loss, images, train_s = self.train_epoch()
                if not math.isfinite(train_loss):
                    metrics = self._metrics(epoch, WORST_LOSS, WORST_LOSS, 0.0, lr, epoch_start,
                                            images, train_s, diverged=1)
                    ctx.report(metrics)
                    reported.append(metrics)
                    self._log(f"epoch {epoch + 1}: loss diverged; stopping")
                    return reported
                val_loss, val_acc = self.evaluate()
                diverged = int(not math.isfinite(val_loss))
                if diverged:
                    val_loss, val_acc = WORST_LOSS, 0.0
                self.scheduler.step(epoch + 1, metric=val_acc)
                if self.best_metric is None or val_acc > self.best_metric:
                    self.best_metric = val_acc
                metrics = self._metrics(epoch, train_loss, val_loss, val_acc, lr, epoch_start,
                                        images, train_s, diverged=diverged)
                done = epoch + 1
                every = cfg.checkpoint_every
                if every > 0 and not diverged and (done % every == 0 or done == self.max_epochs):
                    tmp = Path(tempfile.mkdtemp(prefix=f"ckpt_{done:04d}_"))
                    try:
                        self.save(tmp, done)
                        ctx.report(metrics, checkpoint_dir=tmp)
                    finally:
                        shutil.rmtree(tmp, ignore_errors=True)
                else:
                    ctx.report(metrics)
                reported.append(metrics)
                should_stop = getattr(ctx, "should_stop", None)
                if diverged or (should_stop is not None and should_stop()):
                    break
        finally:
            if cfg.deterministic and not self._prev_deterministic:
                torch.use_deterministic_algorithms(False)
        return reported

    @staticmethod
    def _metrics(epoch, train_loss, val_loss, val_acc, lr, epoch_start, images, train_s, diverged):
        return {
            "epoch": epoch + 1,
            "train_loss": float(train_loss),
            "val_loss": float(val_loss),
            "val_acc": float(val_acc),
            "lr": float(lr),
            "epoch_time_s": time.perf_counter() - epoch_start,
            "train_images_per_s": images / train_s if train_s > 0 else 0.0,
            "diverged": int(diverged),
        }


def train(config: dict, ctx: TrialContext) -> None:
    """The ``finetune`` trainer: fine-tune a timm model with the Quick-Tune knobs in ``config``.

    Raises:
        TrainerError: invalid config (unknown key, bad value, ``cotuning-reg > 0`` without a
            pretrained source head, unknown model / dataset) -- always before training starts.
    """
    FineTuner(config, ctx).fit()
