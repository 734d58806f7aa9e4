"""Quality–cost curve as a PNG: matplotlib when installed (``finops[plot]``), else a plain
numpy + zlib raster (curves and grid, no text) so ``--plot`` always works."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = ["Curve", "save_curve_png"]

F64 = npt.NDArray[np.float64]
Curve = tuple[str, F64, F64]  # (label, cost share, quality)
_COLORS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (127, 127, 127), (148, 103, 189)]


def save_curve_png(
    path: str | Path, curves: Sequence[Curve], *, target: float | None = None, title: str = ""
) -> Path:
    """Write the quality–cost plot of ``curves``; ``target`` draws the 95 % quality line."""
    out = Path(path)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return _raster(out, curves, target)
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=100)
    for i, (label, cost, quality) in enumerate(curves):
        color = tuple(c / 255 for c in _COLORS[i % len(_COLORS)])
        ax.plot(cost * 100, quality * 100, label=label, color=color, linewidth=1.6)
    if target is not None:
        ax.axhline(target * 100, color="black", linestyle=":", linewidth=1, label="95% of strong")
    ax.set_xlabel("calls sent to the strong model (%)")
    ax.set_ylabel("mean correctness (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def _raster(out: Path, curves: Sequence[Curve], target: float | None) -> Path:
    w, h, pad = 640, 440, 40
    img = np.full((h, w, 3), 255, np.uint8)
    lo = min(float(q.min()) for _, _, q in curves)
    hi = max(float(q.max()) for _, _, q in curves)
    lo, hi = lo - 0.02, hi + 0.02

    def xy(c: F64, q: F64) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        x = pad + (c * (w - 2 * pad)).astype(np.int64)
        y = h - pad - ((q - lo) / (hi - lo) * (h - 2 * pad)).astype(np.int64)
        return x, np.clip(y, 0, h - 1)

    for g in np.linspace(0, 1, 11):
        x = int(pad + g * (w - 2 * pad))
        img[pad : h - pad, x] = 230
    img[h - pad, pad : w - pad] = 0
    img[pad : h - pad, pad] = 0
    if target is not None:
        _, ty = xy(np.zeros(1), np.array([target]))
        img[int(ty[0]), pad : w - pad : 3] = 0
    for i, (_, cost, quality) in enumerate(curves):
        dense_c = np.linspace(0, 1, 4 * w)
        cx, cy = xy(dense_c, np.interp(dense_c, cost, quality))
        for dy in (0, 1):
            img[np.clip(cy + dy, 0, h - 1), cx] = _COLORS[i % len(_COLORS)]
        img[pad + 10 + 12 * i : pad + 18 + 12 * i, w - pad - 30 : w - pad - 10] = _COLORS[
            i % len(_COLORS)
        ]
    raw = b"".join(b"\x00" + img[r].tobytes() for r in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF
        )

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    out.write_bytes(png)
    return out
