"""The guard's trained second stage: a small interaction model that reads both texts together.

Pooled cosine compares two averages; the shipped trees compare hand-made summaries of the
two texts' token states. This model reads the token states themselves (the :class:`Tokens`
each stored entry already keeps, MiniLM's last hidden states, frozen) in the manner of ESIM
(Chen et al., 2017, "Enhanced LSTM for Natural Language Inference"), without the LSTMs since
MiniLM's states are already contextual:

1. both texts' pieces are projected ``384 → d``;
2. each piece of one text attends over the other text's pieces (softmax of scaled dot
   products) and is compared with what it attended to: ``[a, ã, a − ã, a ⊙ ã]``, plus its
   best raw cosine to the other text and whether it is a content piece;
3. a shared layer (``4d + 2 → d``, ReLU) reads each compared piece; max and mean pooling
   over each text's pieces;
4. the two texts' pooled vectors are combined symmetrically (sum and absolute difference:
   the score does not depend on which text is the query) and, beside the guard's 27
   standardized features (:data:`~finops.cache.semantic.LEXICAL_FEATURES` then
   :data:`~finops.cache.semantic.TOKEN_FEATURES`), go through a two-layer MLP to one logit.

Trained offline (PyTorch, at training time only; ``scripts/train_interaction.py``) and
exported as float16 arrays in an ``.npz`` file with its provenance; evaluated here in numpy,
in float32, about 0.1 ms per candidate on one thread. A guard of format 4 names such a file
(``Cache(guard_file=...)``). The shipped guard (``data/guard.json`` and ``data/guard_head.npz``)
averages such a head's log-odds with its trees' (weight ``mix``): the head alone did not
beat the trees on questions it had not seen, the mix does (docs/cache.md, "A trained second
stage").
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from finops.errors import ConfigError

__all__ = ["Interaction", "load_interaction"]

Vectors = npt.NDArray[np.float32]

#: Arrays of a head file, in order (``name: shape`` with ``d`` the projection width,
#: ``f`` the number of guard features, ``h`` the MLP's hidden width).
ARRAYS = (
    "proj_w",  # (384, d)
    "proj_b",  # (d,)
    "ffn_w",  # (4d + 2, d)
    "ffn_b",  # (d,)
    "out1_w",  # (4d + f, h)
    "out1_b",  # (h,)
    "out2_w",  # (h,)
    "out2_b",  # ()
    "mean",  # (f,) feature standardization
    "scale",  # (f,)
)

FORMAT = 1


@dataclass(frozen=True, slots=True)
class Interaction:
    """An ESIM-style interaction head over two texts' token states (see the module).

    Arrays are float32 in memory (float16 in the file); ``provenance`` says which data,
    seed, command and held-out figures produced them."""

    proj_w: Vectors
    proj_b: Vectors
    ffn_w: Vectors
    ffn_b: Vectors
    out1_w: Vectors
    out1_b: Vectors
    out2_w: Vectors
    out2_b: float
    mean: Vectors
    scale: Vectors
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def width(self) -> int:
        """The projection width ``d``."""
        return int(self.proj_w.shape[1])

    @property
    def features(self) -> int:
        """How many guard features it reads."""
        return int(self.mean.shape[0])

    def _side(
        self, a: Vectors, b: Vectors, best: Vectors, content: Vectors
    ) -> tuple[Vectors, Vectors]:
        """Pooled (max, mean) of text ``a``'s pieces compared with what they attend to in b."""
        e = (a @ b.T) * (1.0 / np.sqrt(self.width))
        e = np.exp(e - e.max(axis=1, keepdims=True))
        attended = (e / e.sum(axis=1, keepdims=True)) @ b
        d = self.width
        w = self.ffn_w
        # [a, ã, a−ã, a⊙ã, best, content] @ W, without building the concatenation
        h = (
            a @ (w[:d] + w[2 * d : 3 * d])
            + attended @ (w[d : 2 * d] - w[2 * d : 3 * d])
            + (a * attended) @ w[3 * d : 4 * d]
            + best[:, None] * w[4 * d]
            + content[:, None] * w[4 * d + 1]
            + self.ffn_b
        )
        h = np.maximum(h, 0.0)
        return h.max(axis=0), h.mean(axis=0)

    def logits(
        self,
        query: Vectors,
        query_content: npt.NDArray[np.bool_],
        candidates: Sequence[tuple[Vectors, npt.NDArray[np.bool_]]],
        features: Vectors,
    ) -> Vectors:
        """Log-odds of a duplicate for the query against each candidate.

        ``query`` and each candidate's first item: unit token rows (``Tokens.unit()``);
        second items: the content-piece flags; ``features``: ``(len(candidates), f)`` guard
        features (raw; standardized here)."""
        out = np.zeros(len(candidates), dtype=np.float32)
        if not candidates:
            return out
        a = query @ self.proj_w + self.proj_b
        ca = query_content.astype(np.float32)
        f = (np.atleast_2d(features)[:, : self.features] - self.mean) / self.scale
        h1 = f @ self.out1_w[4 * self.width :] + self.out1_b
        d2 = 2 * self.width
        for i, (rows, content) in enumerate(candidates):
            sim = query @ rows.T
            b = rows @ self.proj_w + self.proj_b
            a_max, a_mean = self._side(a, b, sim.max(axis=1), ca)
            b_max, b_mean = self._side(b, a, sim.max(axis=0), content.astype(np.float32))
            ha = np.concatenate([a_max, a_mean])
            hb = np.concatenate([b_max, b_mean])
            z = h1[i] + (ha + hb) @ self.out1_w[:d2] + np.abs(ha - hb) @ self.out1_w[d2 : 2 * d2]
            out[i] = float(np.maximum(z, 0.0) @ self.out2_w) + self.out2_b
        return out

    def save(self, file: str | Path | IO[bytes]) -> None:
        """Write the float16 ``.npz`` form (the provenance as a JSON string inside)."""
        arrays: dict[str, Any] = {
            name: np.asarray(getattr(self, name), dtype=np.float16) for name in ARRAYS
        }
        arrays["format"] = np.asarray(FORMAT)
        arrays["provenance"] = np.asarray(json.dumps(self.provenance, sort_keys=True))
        np.savez_compressed(file, **arrays)

    @classmethod
    def load(cls, file: str | Path | IO[bytes]) -> Interaction:
        """Read :meth:`save`'s form (ValueError if it is not one this finops reads)."""
        with np.load(file, allow_pickle=False) as data:
            if int(data["format"]) != FORMAT:
                raise ValueError(f"interaction head format {int(data['format'])}, not {FORMAT}")
            arrays = {name: np.asarray(data[name], dtype=np.float32) for name in ARRAYS}
            provenance = json.loads(str(data["provenance"]))
        head = cls(
            **{k: v for k, v in arrays.items() if k != "out2_b"},
            out2_b=float(arrays["out2_b"]),
            provenance=provenance,
        )
        d, f = head.width, head.features
        h = head.out1_b.shape[0]
        expected = {
            "proj_w": (384, d),
            "proj_b": (d,),
            "ffn_w": (4 * d + 2, d),
            "ffn_b": (d,),
            "out1_w": (4 * d + f, h),
            "out1_b": (h,),
            "out2_w": (h,),
            "scale": (f,),
        }
        for name, shape in expected.items():
            if getattr(head, name).shape != shape:
                raise ValueError(f"{name} has shape {getattr(head, name).shape}, not {shape}")
        return head


def load_interaction(name: str, *, beside: Path | None = None) -> Interaction:
    """The head file ``name``: next to the guard file ``beside`` came from, else shipped in
    ``finops/cache/data/``."""
    try:
        if beside is not None:
            return Interaction.load(beside.parent / name)
        with resources.files("finops.cache").joinpath("data/" + name).open("rb") as fh:
            return Interaction.load(fh)
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(
            f"the semantic guard's interaction head {name} is unreadable ({exc}); "
            f"reinstall finops or write a guard without one ('finops cache calibrate')"
        ) from exc
