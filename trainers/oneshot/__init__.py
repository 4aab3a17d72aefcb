"""One-shot NAS: search-space decisions inside the network, a weight-sharing supernet,
mutators, and ``build_subnet``.

- mutables (:mod:`trainers.oneshot.mutables`): :class:`OperationSpace`, :class:`InputSpace`,
  :class:`ValueSpace` (+ :func:`derive`), consumed by the fine-grained ops of
  :mod:`trainers.oneshot.ops` (``Conv2d``, ``Linear``, ``BatchNorm2d``: weights allocated at the
  largest value and sliced);
- :func:`search_space` compiles a model's mutables into a :class:`spaces.SearchSpace`;
- mutators (:mod:`trainers.oneshot.mutators`): :class:`RandomMutator`, :class:`FixedMutator`,
  :class:`DartsMutator`;
- :func:`build_subnet` exports one architecture as a plain module with inherited weights;
- :mod:`trainers.oneshot.evaluate`: BatchNorm recalibration and inherited-weight evaluation;
- :mod:`trainers.oneshot.train`: the ``supernet`` trainer (single-path one-shot or DARTS,
  checkpointed) and the ``subnet`` trainer (from scratch or fine-tuned from the supernet);
- :mod:`trainers.oneshot.mnasnet`: an MnasNet-style supernet sized for digits on CPU.

Example::

    net = mnasnet_supernet()
    space = search_space(net)              # blocks.0.op, blocks.0.kernel, ...
    cfg = space.sample(0)
    sub = build_subnet(net, cfg)           # plain nn.Module, sliced weights
"""
from __future__ import annotations

from trainers.oneshot.export import ChosenInputs, build_subnet
from trainers.oneshot.mutables import InputSpace, OperationSpace, ValueSpace, derive
from trainers.oneshot.mutators import (
                                       DartsMutator,
                                       FairMutator,
                                       FixedMutator,
                                       RandomMutator,
                                       SandwichMutator,
                                       apply_config,
)
from trainers.oneshot.space import decisions, nni_search_space, search_space

__all__ = [
           "ChosenInputs",
           "DartsMutator",
           "FairMutator",
           "FixedMutator",
           "InputSpace",
           "OperationSpace",
           "RandomMutator",
           "SandwichMutator",
           "ValueSpace",
           "apply_config",
           "build_subnet",
           "decisions",
           "derive",
           "nni_search_space",
           "search_space",
]
