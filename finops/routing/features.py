"""Request text → sparse feature vector, numpy only, deterministic across processes.

Three groups, all hashed into one index space of ``2**bits`` buckets plus a few dense cues:

- byte n-grams (3..5) of the lower-cased text: robust to unseen vocabulary, catch notation
  (``sqrt(``, ``x^2``, ``$``), computed with vectorised polynomial hashes;
- word unigrams and bigrams (``\\w+`` tokens);
- difficulty cues: length, digits and numbers, math operators, answer-option structure,
  multi-step words, negations ("NOT", "EXCEPT"), statement pairs; appended as dense columns.

Each hashed group is sublinear-tf weighted and L2-normalised. Long prompts are cut to their
first and last ``MAX_CHARS // 2`` characters (the question sits at the end of a chat) so the
cost of one decision is bounded.
"""

from __future__ import annotations

import itertools
import re
import zlib

import numpy as np
import numpy.typing as npt

__all__ = ["DENSE_NAMES", "MAX_CHARS", "Features", "featurize"]

MAX_CHARS = 4000
_NGRAMS = (3, 4, 5)
_P = np.uint64(1_000_003)
_MASK32 = np.uint64(0xFFFFFFFF)
_WORD = re.compile(r"\w+")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_OPTION = re.compile(r"^\s*\(?([A-J])[.)]\s+(.*)$", re.M)
_MATH = re.compile(r"[=+\-*/^<>√∫∑π%]")
_STEPS = re.compile(
    r"\b(then|after|each|every|total|remaining|left|twice|half|per|more than|less than|times)\b",
    re.I,
)
_NEGATION = re.compile(r"\b(NOT|EXCEPT|LEAST|FALSE|INCORRECT)\b")
_STATEMENT = re.compile(r"Statement\s*\d|\bI{1,3}\b\s*(only|and)", re.I)

DENSE_NAMES = (
    "log_chars",
    "log_words",
    "digit_share",
    "log_numbers",
    "math_share",
    "n_options",
    "log_option_chars",
    "option_numeric",
    "steps",
    "negation",
    "statement",
    "question_marks",
    "lines",
    "long_words",
)


class Features:
    """Hashed sparse indices/values plus the dense cue vector of one text."""

    __slots__ = ("dense", "indices", "values")

    def __init__(
        self,
        indices: npt.NDArray[np.int64],
        values: npt.NDArray[np.float64],
        dense: npt.NDArray[np.float64],
    ) -> None:
        self.indices = indices
        self.values = values
        self.dense = dense


def _clip(text: str) -> str:
    if len(text) <= MAX_CHARS:
        return text
    half = MAX_CHARS // 2
    return text[:half] + "\n" + text[-half:]


def _group(hashes: npt.NDArray[np.uint64], bits: int, salt: int) -> tuple[
    npt.NDArray[np.int64], npt.NDArray[np.float64]
]:
    if hashes.size == 0:
        return np.empty(0, np.int64), np.empty(0, np.float64)
    mixed = (hashes * np.uint64(0x9E3779B1) + np.uint64(salt)) & _MASK32
    buckets = (mixed >> np.uint64(32 - bits)).astype(np.int64)
    idx, counts = np.unique(buckets, return_counts=True)
    vals = 1.0 + np.log(counts.astype(np.float64))
    vals /= np.sqrt(float(np.dot(vals, vals)))
    return idx, vals


def _byte_ngrams(data: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    out = []
    for n in _NGRAMS:
        if data.size < n:
            continue
        h = np.zeros(data.size - n + 1, np.uint64)
        for k in range(n):
            h = (h * _P + data[k : data.size - n + 1 + k]) & _MASK32
        out.append(h ^ np.uint64(n << 28))
    return np.concatenate(out) if out else np.empty(0, np.uint64)


def _dense(text: str, words: list[str]) -> npt.NDArray[np.float64]:
    n_chars = max(len(text), 1)
    options = _OPTION.findall(text)
    opt_text = [o[1] for o in options]
    numeric_opts = sum(1 for o in opt_text if _NUMBER.search(o))
    return np.array(
        [
            np.log1p(len(text)),
            np.log1p(len(words)),
            sum(c.isdigit() for c in text) / n_chars * 10.0,
            np.log1p(len(_NUMBER.findall(text))),
            len(_MATH.findall(text)) / n_chars * 10.0,
            min(len(options), 10) / 4.0,
            np.log1p(sum(len(o) for o in opt_text) / max(len(opt_text), 1)),
            numeric_opts / max(len(opt_text), 1),
            np.log1p(len(_STEPS.findall(text))),
            float(bool(_NEGATION.search(text))),
            float(bool(_STATEMENT.search(text))),
            np.log1p(text.count("?")),
            np.log1p(text.count("\n")),
            sum(1 for w in words if len(w) > 9) / max(len(words), 1) * 5.0,
        ],
        dtype=np.float64,
    )


def featurize(text: str, bits: int) -> Features:
    """Features of one prompt text (deterministic: no Python ``hash``)."""
    text = _clip(text)
    low = text.lower()
    data = np.frombuffer(low.encode("utf-8", "replace"), dtype=np.uint8).astype(np.uint64)
    char_idx, char_val = _group(_byte_ngrams(data), bits, 1)
    words = _WORD.findall(low)
    toks = [zlib.crc32(w.encode()) for w in words]
    toks += [zlib.crc32(f"{a} {b}".encode()) for a, b in itertools.pairwise(words)]
    word_idx, word_val = _group(np.array(toks, dtype=np.uint64), bits, 2)
    return Features(
        np.concatenate([char_idx, word_idx]),
        np.concatenate([char_val, word_val]),
        _dense(text, words),
    )
