"""``quick``: archtune's default searcher (``searcher: {type: quick}``).

A warm-start portfolio first (:mod:`.portfolio`), then a learning-curve, cost- and
failure-aware model (:mod:`.policy`), adapted to Ray Tune by :mod:`.searcher`. Pair it with an
early-stopping scheduler (``asha``) to cut bad trials short; it learns from their partial curves.
"""
from __future__ import annotations

from typing import Any

__all__ = ["make_quick", "make_policy"]


def make_policy(exp: Any, space: Any, *, portfolio: list | None = None):
    """The :class:`~.policy.QuickPolicy` for an experiment (seed: ``searcher.seed``, else the
    experiment's; portfolio: :func:`~.portfolio.default_portfolio` unless given)."""
    from .policy import QuickPolicy
    from .portfolio import default_portfolio
    from .tpe import TPEProposer

    seed = exp.searcher.seed if exp.searcher.seed is not None else exp.seed
    items = default_portfolio(space) if portfolio is None else portfolio
    return QuickPolicy(space, max_epochs=exp.max_epochs, mode=exp.mode, seed=seed,
                       portfolio=items, tpe=TPEProposer(space, seed=seed))


def make_quick(exp: Any, space: Any):
    """Searcher factory registered as ``quick`` (``fn(exp, space)``)."""
    from .searcher import QuickSearcher

    return QuickSearcher(make_policy(exp, space), metric=exp.metric, mode=exp.mode)
