"""Networks composed from registered blocks, described in YAML (Vega's fine-grained spaces).

::

    from trainers.compose import build_network, network_space, register_block

    net = build_network("examples/compose_resnet.yaml", {"layer.downsample": "10100100"})
    space = network_space("examples/compose_resnet.yaml")   # a spaces.core.SearchSpace

- :mod:`trainers.compose.registry`: ``BLOCKS`` (one :class:`spaces.registry.Registry`),
  ``register_block``, :class:`BlockSpec`;
- :mod:`trainers.compose.blocks`: the built-in blocks;
- :mod:`trainers.compose.description`: reading and validating descriptions, dotted paths;
- :mod:`trainers.compose.space`: ``hyper_parameters`` -> ``SearchSpace`` (binary codes incl.);
- :mod:`trainers.compose.build`: ``build_network``, ``network_space``, ``describe_network``;
- :mod:`trainers.compose.trainer`: the ``compose`` trainer (the ``nas`` trainer's loop).
"""
from __future__ import annotations

from trainers.compose.build import build_network, describe_network, network_space
from trainers.compose.description import Description, is_description, load_description
from trainers.compose.registry import BLOCKS, BlockSpec, register_block

__all__ = ["BLOCKS", "BlockSpec", "Description", "build_network", "describe_network",
           "is_description", "load_description", "network_space", "register_block"]
