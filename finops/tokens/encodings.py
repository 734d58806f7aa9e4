"""Bundled, hash-verified BPE encodings used through ``tiktoken`` — never downloaded.

``tiktoken.get_encoding`` fetches its rank files from the internet on first use. finops ships
them (``finops/tokens/data``), checks their SHA-256 against the hashes tiktoken itself expects,
and builds ``tiktoken.Encoding`` objects directly, so no code path can reach the network.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finops.errors import EncodingIntegrityError, TokenizerError

__all__ = ["DATA_DIR", "ENCODINGS", "clear_cache", "get_encoding"]

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
    sha256: str
    pat_str: str
    special_tokens: dict[str, int]


_SPECS: dict[str, _Spec] = {
    "o200k_base": _Spec(
        "o200k_base.tiktoken.gz",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        _O200K_PAT,
        {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
    ),
    "cl100k_base": _Spec(
        "cl100k_base.tiktoken.gz",
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


def _load(name: str, folder: Path) -> Any:
    import tiktoken

    spec = _SPECS.get(name)
    if spec is None:
        raise TokenizerError(f"unknown encoding {name!r}: finops bundles {', '.join(_SPECS)}")
    path = folder / spec.file
    try:
        raw = gzip.decompress(path.read_bytes())
    except FileNotFoundError as exc:
        raise TokenizerError(f"bundled encoding file {path} is missing; reinstall finops") from exc
    except (OSError, EOFError) as exc:
        raise EncodingIntegrityError(
            f"bundled encoding file {path} is corrupt ({exc}); reinstall finops"
        ) from exc
    digest = hashlib.sha256(raw).hexdigest()
    if digest != spec.sha256:
        raise EncodingIntegrityError(
            f"bundled encoding file {path} has SHA-256 {digest}, expected {spec.sha256}: it was "
            f"modified or damaged. Reinstall finops; token counts from it would be wrong."
        )
    ranks: dict[bytes, int] = {}
    for line in raw.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return tiktoken.Encoding(
        name=name, pat_str=spec.pat_str, mergeable_ranks=ranks, special_tokens=spec.special_tokens
    )


def clear_cache() -> None:
    """Forget loaded encodings (tests use it to prove a fresh load stays offline)."""
    with _lock:
        _loaded.clear()
