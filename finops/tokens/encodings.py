"""Bundled, hash-verified BPE encodings used through ``tiktoken`` — never downloaded.

``tiktoken.get_encoding`` fetches its rank files from the internet on first use. finops ships
them (``finops/tokens/data``) and builds ``tiktoken.Encoding`` objects directly, so no code
path can reach the network.

The ranks are shipped in a compact binary form (``*.bpe``, :func:`encode_ranks`) rather than
tiktoken's text form (one base64 token and its rank per line): the same 200k ranks load in a
fifth of the time, which matters because the first estimate of a process waits for them. At
load the file's SHA-256 is checked against the one pinned here; the tests rebuild tiktoken's
own text form from each file (:func:`tiktoken_text`) and check it against the SHA-256 that
tiktoken itself expects, so the pinned file is provably OpenAI's vocabulary.
"""

from __future__ import annotations

import array
import hashlib
import logging
import os
import struct
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any

from finops.errors import EncodingIntegrityError, TokenizerError

__all__ = [
    "DATA_DIR",
    "ENCODINGS",
    "clear_cache",
    "decode_ranks",
    "encode_ranks",
    "get_encoding",
    "is_loaded",
    "tiktoken_text",
    "warm",
]

log = logging.getLogger("finops")

DATA_DIR = Path(__file__).resolve().parent / "data"

# Regex and special tokens as defined by tiktoken_ext.openai_public (MIT).
_O200K_PAT = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
_CL100K_PAT = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""


@dataclass(frozen=True)
class _Spec:
    file: str
    sha256: str  # of the shipped compact file (checked at every load)
    tiktoken_sha256: str  # of tiktoken's text form of the same ranks (checked by the tests)
    pat_str: str
    special_tokens: dict[str, int]


_SPECS: dict[str, _Spec] = {
    "o200k_base": _Spec(
        "o200k_base.bpe",
        "fb27c72d615f2b2d846643a807202302287c302087c1581092a5bb967cfd496e",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        _O200K_PAT,
        {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
    ),
    "cl100k_base": _Spec(
        "cl100k_base.bpe",
        "91f42ff389a3727321b75b1c91896cd7c71b4f843e8cf43f010c956c6a6f66bf",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        _CL100K_PAT,
        {
            "<|endoftext|>": 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            "<|endofprompt|>": 100276,
        },
    ),
}

ENCODINGS = tuple(_SPECS)

_lock = threading.Lock()
_loaded: dict[tuple[str, Path], Any] = {}
_warming: set[str] = set()


def _after_fork() -> None:  # a lock held by a loading thread must not outlive it in a child
    global _lock
    _lock = threading.Lock()
    _warming.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def get_encoding(name: str, *, data_dir: Path | None = None) -> Any:
    """The ``tiktoken.Encoding`` ``name`` (``o200k_base`` or ``cl100k_base``), loaded once.

    Raises :class:`~finops.errors.EncodingIntegrityError` if the bundled file was altered.
    """
    folder = data_dir or DATA_DIR
    key = (name, folder)
    enc = _loaded.get(key)
    if enc is not None:
        return enc
    with _lock:
        enc = _loaded.get(key)
        if enc is None:
            enc = _load(name, folder)
            _loaded[key] = enc
    return enc


def is_loaded(name: str) -> bool:
    """Whether the bundled encoding ``name`` is loaded in this process already."""
    return (name, DATA_DIR) in _loaded


def warm(name: str) -> None:
    """Load the bundled encoding ``name`` in a background thread (``finops-warmup``), once.

    Returns at once. Loading ``o200k_base`` takes ~0.2 s of CPU, most of it in tiktoken's
    native constructor, which holds the GIL: started when a call is sent, it overlaps with
    the network wait instead of the process start or the first row.
    """
    if is_loaded(name) or name in _warming or name not in _SPECS:
        return
    _warming.add(name)

    def load() -> None:
        try:
            get_encoding(name)
        except Exception as exc:  # the estimate that needs it reports the problem
            log.debug("finops: tokenizer warm-up failed: %r", exc)

    try:
        threading.Thread(target=load, name="finops-warmup", daemon=True).start()
    except RuntimeError:  # no new threads (interpreter shutting down): load on first need
        _warming.discard(name)


def _load(name: str, folder: Path) -> Any:
    import tiktoken

    spec = _SPECS.get(name)
    if spec is None:
        raise TokenizerError(f"unknown encoding {name!r}: finops bundles {', '.join(_SPECS)}")
    path = folder / spec.file
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise TokenizerError(f"bundled encoding file {path} is missing; reinstall finops") from exc
    except OSError as exc:
        raise EncodingIntegrityError(
            f"bundled encoding file {path} cannot be read ({exc}); reinstall finops"
        ) from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != spec.sha256:
        raise EncodingIntegrityError(
            f"bundled encoding file {path} has SHA-256 {digest}, expected {spec.sha256}: it was "
            f"modified or damaged. Reinstall finops; token counts from it would be wrong."
        )
    ranks = decode_ranks(data)
    return tiktoken.Encoding(
        name=name, pat_str=spec.pat_str, mergeable_ranks=ranks, special_tokens=spec.special_tokens
    )


# -- the compact form --------------------------------------------------------------------------
#
#   b"finops-bpe 1\n", then one group per token length L (ascending), each:
#   struct "<HI" (L, count) · count ranks as little-endian uint32 · count tokens of L bytes
#
# Grouping by length lets the loader cut the tokens with ``struct.iter_unpack`` (in C) rather
# than a Python loop over 200k lines of base64.

_MAGIC = b"finops-bpe 1\n"
_GROUP = struct.Struct("<HI")


def encode_ranks(ranks: Mapping[bytes, int]) -> bytes:
    """The compact form of a BPE rank table (what ``finops/tokens/data/*.bpe`` hold)."""
    groups: dict[int, list[tuple[int, bytes]]] = {}
    for token, rank in sorted(ranks.items(), key=itemgetter(1)):
        if not token or len(token) > 0xFFFF or not 0 <= rank <= 0xFFFFFFFF:
            raise ValueError(f"cannot encode token {token!r} with rank {rank}")
        groups.setdefault(len(token), []).append((rank, token))
    out = [_MAGIC]
    for size in sorted(groups):
        group = groups[size]
        out.append(_GROUP.pack(size, len(group)))
        numbers = _uint32()
        numbers.extend(rank for rank, _ in group)
        if sys.byteorder != "little":
            numbers.byteswap()
        out.append(numbers.tobytes())
        out.append(b"".join(token for _, token in group))
    return b"".join(out)


def decode_ranks(data: bytes) -> dict[bytes, int]:
    """The rank table in ``data`` (:func:`encode_ranks`'s output); ValueError if malformed."""
    if not data.startswith(_MAGIC):
        raise ValueError("not a finops BPE file (bad header)")
    ranks: dict[bytes, int] = {}
    first = itemgetter(0)
    pos, end = len(_MAGIC), len(data)
    while pos < end:
        size, count = _GROUP.unpack_from(data, pos)
        pos += _GROUP.size
        rank_end = pos + 4 * count
        token_end = rank_end + size * count
        if size == 0 or token_end > end:
            raise ValueError("truncated or malformed finops BPE file")
        numbers = _uint32()
        numbers.frombytes(data[pos:rank_end])
        if sys.byteorder != "little":
            numbers.byteswap()
        tokens = map(first, struct.iter_unpack(f"{size}s", data[rank_end:token_end]))
        ranks.update(zip(tokens, numbers, strict=True))
        pos = token_end
    return ranks


def _uint32() -> array.array[int]:
    numbers = array.array("I")
    if numbers.itemsize != 4:  # "I" is 4 bytes on every platform CPython supports
        raise ValueError("unsupported platform: array('I') is not 32-bit")
    return numbers


def tiktoken_text(ranks: Mapping[bytes, int]) -> bytes:
    """tiktoken's own text form of ``ranks`` (``<base64 token> <rank>`` per line), whose
    SHA-256 tiktoken publishes: the tests check each shipped file against it."""
    import base64

    return b"".join(
        base64.b64encode(token) + b" " + str(rank).encode() + b"\n"
        for token, rank in sorted(ranks.items(), key=itemgetter(1))
    )


def clear_cache() -> None:
    """Forget loaded encodings (tests use it to prove a fresh load stays offline)."""
    with _lock:
        _loaded.clear()
        _warming.clear()
