"""Router quality metrics (RouteLLM's, as defined in DESIGN.md §8).

A router gives every prompt a score; higher means "the strong model is needed". At cost level
``c`` the top share ``c`` of prompts (by score) goes to the strong model, the rest to the weak
one. Quality at ``c`` is the mean correctness of that mix (weak calls count as cost 0).

- PGR(c): share of the strong–weak quality gap recovered at ``c``.
- APGR: PGR averaged over cost levels (area under the PGR curve, ``c`` from 0 to 1).
- CPT(x): the smallest cost share whose PGR reaches ``x`` (e.g. 50 %, 80 %).
- saving at 95 %: ``1 - c*`` where ``c*`` is the smallest cost share whose quality is at least
  95 % of the strong model's. With a real price ratio ``r = price(weak) / price(strong)`` the
  saving is ``(1 - c*) * (1 - r)``.

Ties in the score are broken by input order (stable sort), so results are deterministic.
Everything here is numpy only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "RouterMetrics",
    "evaluate",
    "oracle_scores",
    "quality_curve",
    "random_metrics",
]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class RouterMetrics:
    """The headline figures of one router on one labelled set."""

    n: int
    strong_quality: float
    weak_quality: float
    apgr: float
    cpt50: float  # cost share (0..1) at which 50 % of the gap is recovered
    cpt80: float
    saving95: float  # 1 - cost share needed for 95 % of the strong model's quality
    saving95_priced: float | None = None  # same, counting weak calls at the real price ratio

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (for ``--json``)."""
        return asdict(self)


def _labels(strong: Any, weak: Any) -> tuple[FloatArray, FloatArray]:
    s = np.asarray(strong, dtype=np.float64).ravel()
    w = np.asarray(weak, dtype=np.float64).ravel()
    if s.shape != w.shape:
        raise ValueError("strong and weak labels must have the same length")
    if s.size == 0:
        raise ValueError("no labelled prompts")
    return s, w


def quality_curve(scores: Any, strong: Any, weak: Any) -> tuple[FloatArray, FloatArray]:
    """Return ``(cost, quality)`` for every k = 0..n prompts sent to the strong model.

    ``cost[k] = k / n``; ``quality[k]`` is the mean correctness when the ``k`` highest-scored
    prompts go to the strong model and the rest to the weak one.
    """
    s, w = _labels(strong, weak)
    sc = np.asarray(scores, dtype=np.float64).ravel()
    if sc.shape != s.shape:
        raise ValueError("one score per labelled prompt is needed")
    order = np.argsort(-sc, kind="stable")
    gain = (s - w)[order]
    n = s.size
    quality = (w.sum() + np.concatenate(([0.0], np.cumsum(gain)))) / n
    cost = np.arange(n + 1, dtype=np.float64) / n
    return cost, quality


def _first_cost(cost: FloatArray, reached: npt.NDArray[np.bool_]) -> float:
    idx = np.flatnonzero(reached)
    return float(cost[idx[0]]) if idx.size else 1.0


def _from_curve(
    cost: FloatArray, quality: FloatArray, qs: float, qw: float, price_ratio: float | None
) -> RouterMetrics:
    eps = 1e-12
    gap = qs - qw
    if gap > eps:
        pgr = (quality - qw) / gap
        apgr = float(np.trapezoid(pgr, cost))
        cpt50 = _first_cost(cost, pgr >= 0.5 - eps)
        cpt80 = _first_cost(cost, pgr >= 0.8 - eps)
    else:  # the weak model is as good: nothing to recover
        apgr, cpt50, cpt80 = 1.0, 0.0, 0.0
    c95 = _first_cost(cost, quality >= 0.95 * qs - eps)
    saving = 1.0 - c95
    priced = None if price_ratio is None else saving * (1.0 - price_ratio)
    return RouterMetrics(
        n=cost.size - 1,
        strong_quality=qs,
        weak_quality=qw,
        apgr=apgr,
        cpt50=cpt50,
        cpt80=cpt80,
        saving95=saving,
        saving95_priced=priced,
    )


def evaluate(
    scores: Any, strong: Any, weak: Any, *, price_ratio: float | None = None
) -> RouterMetrics:
    """Metrics of a router's ``scores`` against per-prompt correctness labels.

    ``price_ratio`` (weak price / strong price, 0..1) adds the saving at the real price.
    """
    s, w = _labels(strong, weak)
    cost, quality = quality_curve(scores, s, w)
    return _from_curve(cost, quality, float(s.mean()), float(w.mean()), price_ratio)


def oracle_scores(strong: Any, weak: Any) -> FloatArray:
    """Scores of the oracle router: strong-only-right prompts first, weak-only-right last."""
    s, w = _labels(strong, weak)
    return s - w


def random_metrics(
    strong: Any, weak: Any, *, price_ratio: float | None = None
) -> RouterMetrics:
    """Expected metrics of random routing (quality is linear in the cost share)."""
    s, w = _labels(strong, weak)
    n = s.size
    qs, qw = float(s.mean()), float(w.mean())
    cost = np.arange(n + 1, dtype=np.float64) / n
    quality = qw + cost * (qs - qw)
    return _from_curve(cost, quality, qs, qw, price_ratio)
