"""``finops cache calibrate``: fit the semantic guard and its threshold on labelled pairs.

Pairs are JSON lines ``{"a": text, "b": text, "duplicate": bool}`` (optionally gzipped).
They are split three ways by a seeded shuffle: *fit* (the guard's logistic weights), *tune*
(the threshold that meets the target false-hit rate) and *held-out* (the figures reported,
never seen by fitting or tuning). Two false-hit rates are reported (DESIGN.md §7):

- ``false_hits_served``: the share of served hits that are wrong (what a user sees);
- ``false_hits_negatives``: the share of all non-duplicate pairs that would be served.

The threshold is chosen for the first by default (``definition="served"``). Both come with
a 95% Wilson interval. The result is a :class:`~finops.cache.semantic.Guard` data file.
"""

from __future__ import annotations

import gzip
import json
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from finops.cache.semantic import (
    LEXICAL_FEATURES,
    Embedder,
    Guard,
    Tokens,
    Trees,
    Vectors,
    pair_features,
    token_features,
)
from finops.errors import ConfigError

__all__ = ["Calibration", "calibrate", "evaluate", "load_pairs", "wilson"]

Definition = Literal["served", "negatives"]
Model = Literal["logistic", "trees"]


def load_pairs(
    path: str | Path, *, limit: int | None = None, seed: int = 0
) -> list[tuple[str, str, bool]]:
    """Labelled pairs from a JSON-lines file (``.gz`` allowed), shuffled with ``seed``."""
    file = Path(path)
    opener: Any = gzip.open if file.suffix == ".gz" else open
    pairs: list[tuple[str, str, bool]] = []
    n = 0
    try:
        with opener(file, "rt", encoding="utf-8") as fh:
            for line in fh:
                n += 1
                if not line.strip():
                    continue
                row = json.loads(line)
                pairs.append((str(row["a"]), str(row["b"]), bool(row["duplicate"])))
    except FileNotFoundError:
        raise ConfigError(f"pairs file {file} does not exist") from None
    except (ValueError, KeyError) as exc:
        raise ConfigError(
            f"{file}: line {n} is not a pair ({exc}); expected {{'a', 'b', 'duplicate'}}"
        ) from None
    random.Random(seed).shuffle(pairs)
    return pairs[:limit] if limit else pairs


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of the proportion k/n."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


@dataclass
class Evaluation:
    """Figures of one threshold on one set of pairs."""

    pairs: int
    duplicates: int
    served: int
    false_hits: int
    recall: float
    false_hits_served: float
    false_hits_served_ci: tuple[float, float]
    false_hits_negatives: float
    false_hits_negatives_ci: tuple[float, float]

    def as_dict(self) -> dict[str, Any]:
        """Rounded figures for printing and provenance."""
        return {
            "pairs": self.pairs,
            "duplicates": self.duplicates,
            "served": self.served,
            "false_hits": self.false_hits,
            "recall": round(self.recall, 4),
            "precision": round(1 - self.false_hits_served, 4),
            "false_hits_served": round(self.false_hits_served, 4),
            "false_hits_served_ci95": [round(x, 4) for x in self.false_hits_served_ci],
            "false_hits_negatives": round(self.false_hits_negatives, 4),
            "false_hits_negatives_ci95": [round(x, 4) for x in self.false_hits_negatives_ci],
        }


def evaluate(served: npt.NDArray[np.bool_], labels: npt.NDArray[np.bool_]) -> Evaluation:
    """Recall and both false-hit rates of a serve decision per pair."""
    n_served = int(served.sum())
    wrong = int((served & ~labels).sum())
    right = n_served - wrong
    dups = int(labels.sum())
    negatives = len(labels) - dups
    return Evaluation(
        pairs=len(labels),
        duplicates=dups,
        served=n_served,
        false_hits=wrong,
        recall=right / max(1, dups),
        false_hits_served=wrong / max(1, n_served),
        false_hits_served_ci=wilson(wrong, n_served),
        false_hits_negatives=wrong / max(1, negatives),
        false_hits_negatives_ci=wilson(wrong, negatives),
    )


def _fit_logistic(
    x: Vectors, y: npt.NDArray[np.bool_], *, l2: float = 1e-3, epochs: int = 400
) -> tuple[Vectors, float, Vectors, Vectors]:
    """L2-regularized logistic regression by full-batch Adam (numpy only)."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0) + 1e-6
    z = (x - mean) / scale
    t = y.astype(np.float32)
    w = np.zeros(z.shape[1], dtype=np.float64)
    b = 0.0
    m_w = np.zeros_like(w)
    v_w = np.zeros_like(w)
    m_b = v_b = 0.0
    lr, b1, b2 = 0.05, 0.9, 0.999
    for step in range(1, epochs + 1):
        p = 1 / (1 + np.exp(-np.clip(z @ w + b, -40, 40)))
        g = p - t
        gw = z.T @ g / len(t) + l2 * w
        gb = float(g.mean())
        m_w = b1 * m_w + (1 - b1) * gw
        v_w = b2 * v_w + (1 - b2) * gw * gw
        m_b = b1 * m_b + (1 - b1) * gb
        v_b = b2 * v_b + (1 - b2) * gb * gb
        w -= lr * (m_w / (1 - b1**step)) / (np.sqrt(v_w / (1 - b2**step)) + 1e-8)
        b -= lr * (m_b / (1 - b1**step)) / (math.sqrt(v_b / (1 - b2**step)) + 1e-8)
    return w.astype(np.float32), b, mean.astype(np.float32), scale.astype(np.float32)


def _fit_trees(
    x: Vectors, y: npt.NDArray[np.bool_], *, trees: int = 200, leaves: int = 15
) -> tuple[Trees, float]:
    """Gradient-boosted trees (scikit-learn's HistGradientBoostingClassifier, needed only to
    calibrate) over the columns of ``x`` (the lexical features, then the token features if
    any), exported as numpy arrays for :class:`Trees`."""
    try:
        from sklearn.ensemble import HistGradientBoostingClassifier  # type: ignore[import-untyped]
    except ImportError as exc:
        raise ConfigError(
            "calibrating a tree guard needs scikit-learn (pip install scikit-learn), "
            "or pass model='logistic'"
        ) from exc
    # unconstrained: monotonic constraints (more overlap never lowers the score) cost 3 points
    # of held-out recall on QQP; the same-words rule in Guard.score covers identical texts
    model = HistGradientBoostingClassifier(
        max_iter=trees, learning_rate=0.05, max_leaf_nodes=leaves, random_state=0
    ).fit(x.astype(np.float64), y)
    nodes = [p[0].nodes for p in model._predictors]
    width = max(len(n) for n in nodes)
    shape = (len(nodes), width)
    feature = np.zeros(shape, dtype=np.intp)
    threshold = np.zeros(shape, dtype=np.float64)
    left = np.zeros(shape, dtype=np.intp)
    right = np.zeros(shape, dtype=np.intp)
    leaf = np.ones(shape, dtype=bool)
    value = np.zeros(shape, dtype=np.float32)
    depth = 0
    for i, n in enumerate(nodes):
        k = len(n)
        feature[i, :k] = n["feature_idx"]
        threshold[i, :k] = n["num_threshold"]
        left[i, :k] = n["left"]
        right[i, :k] = n["right"]
        leaf[i, :k] = n["is_leaf"].astype(bool)
        value[i, :k] = n["value"]
        depth = max(depth, int(n["depth"].max()))
    bias = float(np.ravel(model._baseline_prediction)[0])
    return Trees(feature, threshold, left, right, leaf, value, depth), bias


def _threshold(
    scores: Vectors, labels: npt.NDArray[np.bool_], target: float, definition: Definition
) -> float:
    """The lowest score threshold whose false-hit rate (by ``definition``) is ≤ target."""
    order = np.argsort(-scores)
    s = scores[order]
    wrong = np.cumsum(~labels[order])
    served = np.arange(1, len(s) + 1)
    rate = wrong / served if definition == "served" else wrong / max(1, int((~labels).sum()))
    # a threshold serves every pair scoring at least as much: only the last position of a run
    # of tied scores is a possible cut (trees give many ties)
    last_of_tie = np.r_[s[1:] < s[:-1], True]
    ok = np.nonzero((rate <= target) & (s > 0) & last_of_tie)[0]  # 0 (veto, floor): never
    if definition == "served":
        # the running rate is noisy at the top: take the last position where it holds and
        # every later position (with at least 50 served) breaks it
        ok = ok[ok >= min(49, len(s) - 1)] if len(ok) else ok
    if not len(ok):
        return float(s[0]) + 1e-6 if len(s) else 1.0
    return max(float(s[ok[-1]]), 1e-6)


@dataclass
class Calibration:
    """The result of :func:`calibrate`."""

    guard: Guard
    held_out: dict[str, Any]
    cosine_only: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)


def _features(
    pairs: Sequence[tuple[str, str, bool]],
    vectors: dict[str, Vectors],
    tokens: dict[str, Tokens] | None = None,
) -> tuple[Vectors, Vectors, npt.NDArray[np.bool_], Vectors | None]:
    feats = np.stack([pair_features(a, b, vectors[a], vectors[b]) for a, b, _ in pairs])
    cos = feats[:, 0].copy()
    labels = np.array([d for _, _, d in pairs], dtype=bool)
    extra = None
    if tokens is not None:
        extra = np.array(
            [token_features(tokens[a], tokens[b]) for a, b, _ in pairs], dtype=np.float32
        )
    return feats, cos, labels, extra


def calibrate(
    pairs: Sequence[tuple[str, str, bool]],
    *,
    embedder: Embedder,
    target_false_hit: float = 0.01,
    definition: Definition = "served",
    cosine_floor: float = 0.7,
    held_out_share: float = 0.3,
    tune_share: float = 0.3,
    source: str = "",
    batch: int = 1,
    precomputed: dict[str, Vectors] | None = None,
    model: Model = "logistic",
    tokens: bool | None = None,
    precomputed_tokens: dict[str, Tokens] | None = None,
) -> Calibration:
    """Fit the guard on part of ``pairs``, tune its threshold, report on the held-out rest.

    ``model="trees"`` fits gradient-boosted trees over the lexical features (the shipped
    guard; needs scikit-learn at calibration time only), ``"logistic"`` a logistic model over
    the lexical and embedding features. Texts are embedded ``batch`` at a time; the default 1
    is how the cache embeds (the int8 model quantizes activations per input, so padding a
    batch moves vectors slightly). ``tokens`` (trees only; default: when the embedder
    has ``embed_tokens``) adds the token-alignment features (:data:`TOKEN_FEATURES`)."""
    if not 0 < target_false_hit < 1:
        raise ConfigError(f"target false-hit rate {target_false_hit} must be between 0 and 1")
    if len(pairs) < 200:
        raise ConfigError(f"calibration needs at least 200 labelled pairs, got {len(pairs)}")
    n_test = int(len(pairs) * held_out_share)
    rest = pairs[n_test:]
    test = pairs[:n_test]
    n_tune = int(len(rest) * tune_share)
    tune, fit = rest[:n_tune], rest[n_tune:]

    if tokens is None:
        tokens = model == "trees" and callable(getattr(embedder, "embed_tokens", None))
    if tokens and model != "trees":
        raise ConfigError("token features are read by the trees guard only: model='trees'")
    t0 = time.perf_counter()
    texts = sorted({t for a, b, _ in pairs for t in (a, b)}, key=len)  # less padding
    vectors: dict[str, Vectors] = dict(precomputed or {})
    states: dict[str, Tokens] | None = dict(precomputed_tokens or {}) if tokens else None
    texts = [t for t in texts if t not in vectors or (states is not None and t not in states)]
    for i in range(0, len(texts), batch):
        chunk = texts[i : i + batch]
        if states is not None:
            vecs, toks = embedder.embed_tokens(chunk)  # type: ignore[attr-defined]
            states.update(zip(chunk, toks, strict=True))
        else:
            vecs = embedder.embed(chunk)
        for text, vec in zip(chunk, vecs, strict=True):
            vectors[text] = vec
    t_embed = time.perf_counter() - t0

    x_fit, c_fit, y_fit, t_fit = _features(fit, vectors, states)
    x_tune, c_tune, y_tune, t_tune = _features(tune, vectors, states)
    x_test, c_test, y_test, t_test = _features(test, vectors, states)
    keep = c_fit >= cosine_floor
    trees: Trees | None = None
    if model == "trees":
        empty = np.zeros(0, dtype=np.float32)
        columns = x_fit[keep][:, : len(LEXICAL_FEATURES)]
        if t_fit is not None:
            columns = np.concatenate([columns, t_fit[keep]], axis=1)
        trees, b = _fit_trees(columns, y_fit[keep])
        w, mean, scale = empty, empty, empty
    else:
        w, b, mean, scale = _fit_logistic(x_fit[keep], y_fit[keep])
    uses = bool(tokens)
    guard0 = Guard(
        w, b, mean, scale, 0.0, cosine_floor, embedder.name, {}, trees=trees, uses_tokens=uses
    )
    s_tune = np.where(c_tune >= cosine_floor, guard0.score(x_tune, t_tune), 0.0)
    threshold = _threshold(s_tune.astype(np.float32), y_tune, target_false_hit, definition)
    s_test = np.where(c_test >= cosine_floor, guard0.score(x_test, t_test), 0.0)
    held = evaluate(s_test >= threshold, y_test).as_dict()
    cos_threshold = _threshold(c_tune, y_tune, target_false_hit, definition)
    cos_only = {
        "threshold": round(cos_threshold, 4),
        **evaluate(c_test >= cos_threshold, y_test).as_dict(),
    }
    provenance = {
        "source": source,
        "pairs": {"fit": len(fit), "tune": len(tune), "held_out": len(test)},
        "model": model,
        "token_features": uses,
        "target_false_hit": target_false_hit,
        "definition": definition,
        "held_out": held,
        "cosine_only_held_out": cos_only,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    guard = Guard(
        w,
        b,
        mean,
        scale,
        threshold,
        cosine_floor,
        embedder.name,
        provenance,
        trees=trees,
        uses_tokens=uses,
    )
    return Calibration(
        guard=guard,
        held_out=held,
        cosine_only=cos_only,
        timings={"embed_s": round(t_embed, 1), "texts": float(len(texts))},
    )
