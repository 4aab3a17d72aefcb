"""The timm fine-tuning trainer: ``train(config, ctx)``.

Every Quick-Tune knob (REFERENCE.md section 1) is real; the pieces are built by the pure helpers
of :mod:`trainers.finetune_factory`:

- model: ``timm.create_model(model, drop_rate=drop)`` at the size
  :func:`trainers.model_fit.fit_model` chose for ``image_size`` (``img_size=`` where timm can,
  ``dynamic_img_pad`` where the patch size does not divide it, else images resized to the nearest
  size the model accepts; the side used is reported as ``input_size``). ``pretrained`` is
  ``False``, ``True`` (timm hub weights) or a path to a local checkpoint (a state dict, also
  inside ``state_dict``/``model``, or ``.safetensors``), loaded through timm's own loader. The
  head -- every module ``reset_classifier`` re-creates -- is replaced when the class count
  differs; the pretrained head is kept as Co-Tuning's source head.
- data: timm's training pipeline with the ``data-augmentation`` op (:mod:`trainers.transforms`),
  the model's evaluation pipeline.
- ``pct-to-freeze`` / ``linear-probing`` (:mod:`trainers.freezing`); linear probing trains the
  head alone for ``ctx.max_epochs // 2`` epochs, then the optimiser is rebuilt over the newly
  trainable parameters, keeping the head's optimiser state and the LR schedule position.
- ``layer-decay`` / ``opt`` / ``sched`` / ``warmup*`` (:mod:`trainers.optim`).
- ``stoch-norm``, ``sp-reg``, ``delta-reg``, ``bss-reg``, ``cotuning-reg``
  (:mod:`trainers.stochnorm`, :mod:`trainers.regularizers`); DELTA and BSS read the pre-logit
  features before the head's dropout. ``cotuning-reg > 0`` without a pretrained source head is
  rejected with a :class:`TrainerError` before any training.
- ``mixup``/``cutmix``/``mixup-prob``/``smoothing``, ``clip-grad`` (unscaled first under AMP),
  ``amp`` (bf16 where supported, else fp16 with a ``GradScaler``).

Each epoch reports ``epoch, train_loss, val_loss, val_acc, lr, epoch_time_s,
train_images_per_s, diverged, input_size`` plus a flag per setting that does less than asked
(:func:`trainers.finetune_factory.config_notes`, also logged once) and, every
``checkpoint_every`` epochs, a full checkpoint (:mod:`trainers.checkpoint`; L2-SP's ``w0`` and
Co-Tuning's state included). A NaN/inf loss reports once with ``diverged=1`` and returns.
Resuming from ``ctx.restore_dir`` continues bit-for-bit (deterministic CPU mode). Resuming
under a mutated config (a PBT exploit) keeps the weights and each parameter's optimiser state,
mapped by parameter name when the new config groups the parameters differently, and applies the
new config's optimiser hyperparameters and schedule.
"""
from __future__ import annotations

import math
import shutil
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trainers.errors import TrainerError

from . import freezing
from .api import TrialContext
from .checkpoint import load_optimizer_state, read_checkpoint, restore_rng_state, save_checkpoint
from .config import TrainerConfig
from .finetune_factory import (
    config_notes,
    configure_determinism,
    create_amp,
    create_criterion,
    create_data,
    create_model,
    create_regularizers,
    resolve_device,
    seed_everything,
)
from .model_fit import fit_model
from .optim import create_optimizer, create_scheduler, current_lr, rebuild_optimizer

__all__ = ["WORST_LOSS", "FineTuner", "build_model", "train"]

WORST_LOSS = 1e9  # reported val_loss/train_loss of a diverged trial
_NAN_CHECK_EVERY = 25  # steps between finiteness checks of the running loss


def build_model(cfg: TrainerConfig) -> tuple[nn.Module, nn.Module | None]:
    """``(model, source_head)`` for ``cfg`` at its ``image_size``
    (:func:`trainers.finetune_factory.create_model` with :func:`trainers.model_fit.fit_model`)."""
    return create_model(cfg, fit_model(cfg.model, cfg.image_size))


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
        self._setup_runtime()
        self.fit_info = fit_model(cfg.model, cfg.image_size)
        model, source_head = create_model(cfg, self.fit_info)
        self.notes = config_notes(cfg, model, self.max_epochs)
        self.data = create_data(cfg, model, self.fit_info, self.device, self.seed)
        self.num_classes = self.data.num_classes
        self.train_loader, self.val_loader = self.data.train_loader, self.data.val_loader
        self.model = self._prepare_model(model)
        self.frozen = freezing.freeze_plan(self.model, cfg.pct_to_freeze)
        self.probe_epochs = self.max_epochs // 2 if cfg.linear_probing else 0
        self._set_head_only(False)
        self.regs = create_regularizers(cfg, self.model, self.frozen, source_head,
                                        self.num_classes, self.device)
        self.l2sp, self.delta, self.cotuning = self.regs.l2sp, self.regs.delta, self.regs.cotuning
        self.criterion, self.mixup_fn = create_criterion(cfg, self.num_classes)
        self.amp_dtype, self.scaler = create_amp(cfg, self.device)
        for message in self.notes.values():
            if self.logger is not None:
                self.logger.warning(message)

        state = read_checkpoint(ctx.restore_dir) if ctx.restore_dir is not None else None
        self.start_epoch = int(state["epoch"]) if state is not None else 0
        self.best_metric: float | None = None
        # the trainable set the checkpoint's optimiser was built for (or the first epoch's)
        self._set_head_only(max(self.start_epoch - 1, 0) < self.probe_epochs)
        self.optimizer = self._make_optimizer()
        self.scheduler = create_scheduler(self.optimizer, cfg, self.max_epochs)
        if state is not None:
            self._restore(state)
        elif self.cotuning is not None:
            self._compute_relationship()

    def _setup_runtime(self) -> None:
        """Logger, seed, CPU threads, device, determinism; seeds every RNG."""
        self.logger = getattr(self.ctx, "logger", None)
        self.seed = int(getattr(self.ctx, "seed", 0))
        if getattr(self.ctx, "num_cpus", None):
            torch.set_num_threads(max(1, int(self.ctx.num_cpus)))
        self.device = resolve_device(self.cfg.device)
        self._prev_deterministic = configure_determinism(self.cfg.deterministic, self.device)
        self.channels_last = self.device.type == "cuda"
        seed_everything(self.seed)

    def _prepare_model(self, model: nn.Module) -> nn.Module:
        """Head sized to the task, StochNorm, device and memory format."""
        if model.num_classes != self.num_classes:
            model.reset_classifier(self.num_classes)
        if self.cfg.stoch_norm:
            from .stochnorm import convert_to_stochnorm

            model = convert_to_stochnorm(model)
        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        return model

    # -- resume ---------------------------------------------------------------------------
    def _restore(self, state: dict) -> None:
        """Load a checkpoint into the freshly built run. The *current* config's optimiser
        hyperparameters win over the saved ones (a PBT exploit may have mutated lr, weight-decay,
        layer-decay, momentum, betas); with an unchanged config the run continues bit-for-bit.

        The model weights are always restored; the optimiser state whole when the grouping is
        unchanged, else per parameter by name (:func:`trainers.checkpoint.load_optimizer_state`);
        the epoch schedules are rebuilt at the resumed epoch, a plateau schedule keeps its
        counters and LR factor (:meth:`_restore_schedule`); L2-SP's ``w0``, Co-Tuning's state,
        the loader's and the global RNG states come back (:meth:`_restore_extra`).
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
        self._restore_schedule(state, how, fresh)
        self.best_metric = state.get("best_metric")
        self._restore_extra(state.get("extra", {}))
        restore_rng_state(state["rng"])

    def _restore_schedule(self, state: dict, how: str | None, fresh: list[dict]) -> None:
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
        if not plateau:  # timm's epoch schedules are pure functions of the epoch and the config
            self.scheduler.step(self.start_epoch)
            return
        inner = self.scheduler.lr_scheduler
        saved = (state.get("scheduler") or {}).get("inner")
        if saved is not None:
            per_group = {k: getattr(inner, k) for k in ("min_lrs", "_last_lr") if hasattr(inner, k)}
            inner.load_state_dict(saved)
            for key, value in per_group.items():  # sized to the current groups
                if len(getattr(inner, key, None) or []) != len(self.optimizer.param_groups):
                    setattr(inner, key, value)
            if how != "exact":
                inner._last_lr = [float(g["lr"]) for g in self.optimizer.param_groups]
        if self.start_epoch <= self.scheduler.warmup_t:
            self.scheduler.step(self.start_epoch)

    def _restore_extra(self, extra: dict) -> None:
        if self.l2sp is not None and "l2sp" in extra:
            self.l2sp.load_state_dict(extra["l2sp"])
        if self.cotuning is not None:
            if "cotuning" in extra:
                self.cotuning.load_state_dict(extra["cotuning"])
            else:  # cotuning-reg switched on by the mutation: relationship from these weights
                self._compute_relationship()
        if "loader_rng" in extra and self.train_loader.generator is not None:
            self.train_loader.generator.set_state(extra["loader_rng"].cpu())

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
            # timm model, so it gets its own groups (no weight decay on 1-D parameters)
            params = list(self.cotuning.source_head.parameters())
            for group, wd in (([p for p in params if p.ndim > 1], self.cfg.weight_decay),
                              ([p for p in params if p.ndim <= 1], 0.0)):
                if group:
                    optimizer.add_param_group({"params": group, "weight_decay": wd,
                                               "lr_scale": 1.0})
        return optimizer

    def _source_logits(self, feature_map: torch.Tensor) -> torch.Tensor:
        return self.cotuning.source_head.logits(self.model, feature_map)

    def _compute_relationship(self) -> None:
        from .regularizers import compute_relationship

        loader = torch.utils.data.DataLoader(self.data.plain_train_ds,
                                             batch_size=self.data.eval_batch_size)
        self.model.eval()
        try:
            rel = compute_relationship(
                lambda x: self._source_logits(self.model.forward_features(self._to_device(x))),
                nn.Identity(), loader, self.num_classes,
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
            fmap = feats = None
            if self.regs.need_features or cfg.bss_reg > 0:
                from .regularizers import head_pre_logits

                fmap = self.model.forward_features(x)
                logits = self.model.forward_head(fmap)
                feats = head_pre_logits(self.model, fmap)
            else:
                logits = self.model(x)
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
                term = self.cotuning.loss_from_logits(self._source_logits(fmap), target)
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
        if self.l2sp is not None:
            extra["l2sp"] = self.l2sp.state_dict()
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

    def _metrics(self, epoch, train_loss, val_loss, val_acc, lr, epoch_start, images, train_s,
                 diverged):
        return {
            "input_size": int(self.fit_info.input_size),
            **{flag: 1 for flag in self.notes},
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
