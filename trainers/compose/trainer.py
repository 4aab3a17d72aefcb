"""The ``compose`` trainer: train a described network with the ``nas`` trainer's loop.

``train(config, ctx)`` reads ``network`` (a description mapping or a YAML path; the experiment's
``network:`` section puts it there), the description's searchable fields by dotted path, and the
``nas`` run settings (``dataset``, ``image_size``, ``lr``, ``batch_size``, ``task`` ...). A
network that ends in a multi-level backbone (``SpineNet``, ``NASFPN``) gets a classification
head, a RetinaNet head with ``task: detection`` or a segmentation head with
``task: segmentation``. It reports what the ``nas`` trainer reports;
``arch`` is ``compose`` and ``arch_id`` is the space's ``config_id`` of the searchable fields.
"""
from __future__ import annotations

from typing import Any, Mapping

from torch import nn

from trainers.api import TrialContext
from trainers.compose.build import build_network
from trainers.compose.description import Description, load_description
from trainers.compose.space import description_space
from trainers.errors import TrainerError

__all__ = ["NetworkSource", "NetworkTrainer", "train"]


class NetworkSource:
    """A description as a model source of :mod:`trainers.nas.model_trainer`."""

    name = "compose"

    def __init__(self, description: Any):
        self.description: Description = load_description(description)
        self.space = description_space(self.description)

    def build_for_trial(self, arch: Mapping[str, Any], task: str,
                        num_classes: int) -> tuple[nn.Module, set[str]]:
        net = build_network(self.description, arch)
        if getattr(net, "is_backbone", False):
            from trainers.nas.spinenet_builders import attach_head

            net = attach_head(net, {}, task, num_classes, {})
        elif task != "classification":
            raise TrainerError(f"{self.description.source}: task {task!r} needs a network "
                               "that ends in a multi-level backbone (SpineNet, NASFPN)")
        return net, set(self.space.params)


def train(config: dict, ctx: TrialContext) -> None:
    """Train ``config["network"]`` with the searchable fields and run settings in ``config``.

    Raises:
        TrainerError: no ``network``, an invalid description, unknown keys or values outside
            the fields' domains, before anything is trained.
    """
    from trainers.nas.model_trainer import train_model_source

    if "network" not in config:
        raise TrainerError("the compose trainer needs 'network': a description mapping or a "
                           "YAML path (the experiment's network: section)")
    source = NetworkSource(config["network"])
    train_model_source(source, {k: v for k, v in config.items() if k != "network"}, ctx)


train.checkpoints = True


class NetworkTrainer:
    """``train`` bound to one description: what an experiment's ``network:`` section runs.

    Picklable (the description travels as data, so trial workers need no file)."""

    checkpoints = True

    def __init__(self, description: Any):
        self.description = load_description(description)

    def __call__(self, config: dict, ctx: TrialContext) -> None:
        train({**config, "network": self.description}, ctx)

    @property
    def space(self):
        return description_space(self.description)


