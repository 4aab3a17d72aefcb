"""Build a composed network: a description plus a configuration of its searchable fields."""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Mapping

from torch import nn

from spaces.core import SearchSpace
from trainers.compose.description import Description, load_description
from trainers.compose.registry import BLOCKS
from trainers.compose.space import decode_value, description_space
from trainers.errors import TrainerError

__all__ = ["build_network", "describe_network", "network_space", "resolve_config"]


def network_space(description: Any) -> SearchSpace:
    """The :class:`~spaces.core.SearchSpace` of a description's ``hyper_parameters``: every
    searcher, the Optuna/Tune compilers, ``size()`` and ``config_id`` work on it."""
    return description_space(load_description(description))


def resolve_config(desc: Description, space: SearchSpace,
                   config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The full configuration (defaults for what ``config`` leaves out), validated.

    Raises:
        TrainerError: a key that is not a searchable field, or a value outside its domain.
    """
    values = space.default()
    for key, value in (config or {}).items():
        if key not in space:
            import difflib

            close = difflib.get_close_matches(key, list(space.params), n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise TrainerError(f"{desc.source}: configuration key {key!r} is not a searchable "
                               f"field{hint} (hyper_parameters: "
                               f"{', '.join(space.params) or 'none'})")
        values[key] = value
    problems = space.violations(values)
    if problems:
        raise TrainerError(f"{desc.source}: invalid configuration: {'; '.join(problems)}")
    return values


def build_network(description: Any, config: Mapping[str, Any] | None = None) -> nn.Module:
    """Build ``description`` (a mapping, a YAML path or a :class:`Description`) with
    ``config`` (dotted path -> value) applied; unset searchable fields keep the values written in
    the description.

    The result is an ``nn.Sequential`` whose children are named after ``modules``; it has
    ``out_channels`` when its last block has.

    Raises:
        TrainerError: invalid description or configuration, or a block that cannot be built,
            naming the file and the path.
    """
    desc = load_description(description)
    space = description_space(desc)
    values = resolve_config(desc, space, config)
    data = desc.with_values({k: decode_value(space, k, v) for k, v in values.items()})
    children = OrderedDict((name, desc.spec(name, data).build()) for name in desc.modules)
    net = nn.Sequential(children)
    last = next(reversed(children.values()))
    if hasattr(last, "out_channels"):
        net.out_channels = last.out_channels
    net.is_backbone = bool(BLOCKS.meta(desc.spec(desc.modules[-1], data).type).get("backbone"))
    return net


def describe_network(description: Any) -> str:
    """What ``archtune space show NETWORK.yaml`` prints: modules, searchable fields with their
    domains and defaults, the space's size, and the default network's parameter count."""
    from spaces.describe import describe_space

    desc = load_description(description)
    space = description_space(desc)
    net = build_network(desc)
    n_params = sum(p.numel() for p in net.parameters())
    lines = [f"network {desc.source}: modules {', '.join(desc.modules)}"]
    for name in desc.modules:
        lines.append(f"  {name}: {desc.spec(name).type}")
    if len(space):
        lines.append("searchable fields:")
        lines.append(describe_space(space))
    else:
        lines.append("searchable fields: none (no hyper_parameters)")
    lines.append(f"default network: {n_params:,} parameters")
    return "\n".join(lines)
