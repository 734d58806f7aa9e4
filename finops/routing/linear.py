"""Sparse design matrices and a ridge solver in numpy alone (no scipy, no scikit-learn).

The router is trained on a few thousand to a few hundred thousand prompts: a CSR matrix in
three numpy arrays and conjugate gradients on the normal equations fit in seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from finops.routing.features import Features

__all__ = ["Design", "Operator", "design", "ridge"]

F64 = npt.NDArray[np.float64]


class Operator(Protocol):
    """What :func:`ridge` needs of a design: ``X·w`` and ``Xᵀ·u`` over sparse + dense columns.

    :class:`Design` is the numpy implementation; experiments may pass a faster one (e.g.
    scipy sparse products) and get the same solver.
    """

    @property
    def width(self) -> int:
        """Number of sparse (hashed) columns."""
        ...

    @property
    def dense(self) -> F64:
        """The dense columns, ``(rows, k)``."""
        ...

    def matvec(self, w_sparse: F64, w_dense: F64) -> F64:
        """``X · [w_sparse; w_dense]``, one value per row."""
        ...

    def rmatvec(self, u: F64) -> tuple[F64, F64]:
        """``Xᵀ · u`` split into its sparse and dense parts."""
        ...


@dataclass(slots=True)
class Design:
    """Rows of hashed features (CSR) plus standardised dense cue columns."""

    indptr: npt.NDArray[np.int64]
    indices: npt.NDArray[np.int64]
    data: F64
    dense: F64  # (n, k), already standardised
    width: int  # number of hashed columns

    @property
    def rows(self) -> int:
        return int(self.indptr.size - 1)

    def take(self, rows: npt.NDArray[np.int64]) -> Design:
        """A new design holding only ``rows`` (in that order)."""
        starts, ends = self.indptr[rows], self.indptr[rows + 1]
        lengths = ends - starts
        indptr = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
        pick = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends, strict=True)])
        return Design(indptr, self.indices[pick], self.data[pick], self.dense[rows], self.width)

    def matvec(self, w_sparse: F64, w_dense: F64) -> F64:
        """``X · [w_sparse; w_dense]``, one value per row."""
        prod = self.data * w_sparse[self.indices]
        sums = np.concatenate(([0.0], np.cumsum(prod)))
        return np.asarray(sums[self.indptr[1:]] - sums[self.indptr[:-1]] + self.dense @ w_dense)

    def rmatvec(self, u: F64) -> tuple[F64, F64]:
        """``Xᵀ · u`` split into its sparse and dense parts."""
        per = np.repeat(u, np.diff(self.indptr))
        grad = np.bincount(self.indices, weights=self.data * per, minlength=self.width)
        return np.asarray(grad, dtype=np.float64), np.asarray(self.dense.T @ u, dtype=np.float64)


def design(feats: Sequence[Features], bits: int, mean: F64, std: F64) -> Design:
    """Stack per-prompt features into a :class:`Design` (dense cues standardised)."""
    lengths = np.array([f.indices.size for f in feats], dtype=np.int64)
    indptr = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    indices = np.concatenate([f.indices for f in feats]) if feats else np.empty(0, np.int64)
    data = np.concatenate([f.values for f in feats]) if feats else np.empty(0)
    dense = np.stack([f.dense for f in feats]) if feats else np.empty((0, mean.size))
    return Design(indptr, indices.astype(np.int64), data, (dense - mean) / std, 1 << bits)


def ridge(
    x: Operator,
    y: F64,
    *,
    alpha: float,
    dense_alpha: float,
    iters: int = 200,
    tol: float = 1e-6,
    start: tuple[F64, F64] | None = None,
) -> tuple[F64, F64, float]:
    """Minimise ``|y - b - Xw|² + alpha |w_sparse|² + dense_alpha |w_dense|²`` by CG.

    ``start`` warm-starts from earlier weights (a refit on more rows converges in a few
    iterations). Returns ``(w_sparse, w_dense, bias)``. Deterministic (no randomness).
    """
    bias = float(y.mean())
    r_y = y - bias
    ws = np.zeros(x.width) if start is None else start[0].astype(np.float64).copy()
    wd = np.zeros(x.dense.shape[1]) if start is None else start[1].astype(np.float64).copy()
    # normal equations A w = X^T y with A = X^T X + diag(alpha); X centred through the bias
    bs, bd = x.rmatvec(r_y)

    def apply(vs: F64, vd: F64) -> tuple[F64, F64]:
        u = x.matvec(vs, vd)
        u -= u.mean()
        gs, gd = x.rmatvec(u)
        return gs + alpha * vs, gd + dense_alpha * vd

    stop = tol * tol * float(bs @ bs + bd @ bd)
    if start is None:
        rs, rd = bs.copy(), bd.copy()
    else:
        qs0, qd0 = apply(ws, wd)
        rs, rd = bs - qs0, bd - qd0
    ps, pd = rs.copy(), rd.copy()
    rr = float(rs @ rs + rd @ rd)
    for _ in range(iters):
        if rr <= stop:
            break
        qs, qd = apply(ps, pd)
        step = rr / float(ps @ qs + pd @ qd)
        ws += step * ps
        wd += step * pd
        rs -= step * qs
        rd -= step * qd
        rr_new = float(rs @ rs + rd @ rd)
        ps = rs + (rr_new / rr) * ps
        pd = rd + (rr_new / rr) * pd
        rr = rr_new
    bias -= float((x.matvec(ws, wd)).mean())
    return ws, wd, bias
