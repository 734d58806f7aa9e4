"""``finops.Cache``: the cache configuration (keyword-only, validated, also from TOML).

fo = finops.FinOps(cache=finops.Cache(store="diskcache:///var/cache/finops", ttl="7d"))

# finops.toml
[cache]
store = "diskcache://.finops-cache"      # relative to the file
ttl = "7d"
max_size = "2GB"
memory_tier = "64MB"
tenant = "team"                          # a tag: one namespace per value
scope = { feature = "faq" }              # only calls with these tags are cached
semantic = true
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from finops.errors import ConfigError

__all__ = ["ENDPOINTS", "Cache", "load_cache", "parse_duration", "parse_size"]

#: Endpoints the cache can serve.
ENDPOINTS = frozenset(
    {
        "chat.completions",
        "responses",
        "embeddings",
        "messages",
        "generate_content",  # Gemini (google-genai), sync and aio, stream and not
        "embed_content",  # Gemini embeddings
        "converse",  # Bedrock Converse and ConverseStream
        "invoke_model",  # Bedrock InvokeModel (not its response stream)
    }
)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_DURATION_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|tb|kib|mib|gib|tib)?\s*$", re.I)
_SIZE_B = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
    None: 1,
}


def parse_duration(value: str | float | int | None) -> float | None:
    """Seconds of ``"30s"``, ``"15m"``, ``"2h"``, ``"7d"``, ``"1w"`` or a number; None: forever."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value).lower())
        if not match:
            raise ValueError(f"{value!r} is not a duration: use e.g. '30s', '15m', '2h', '7d'")
        seconds = float(match.group(1)) * _DURATION_S[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"duration {value!r} must be positive")
    return seconds


def parse_size(value: str | int) -> int:
    """Bytes of ``"64MB"``, ``"2GiB"``, ``"512kb"`` or an int."""
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    else:
        match = _SIZE.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a size: use e.g. '64MB', '2GB', '512KiB'")
        unit = match.group(2).lower() if match.group(2) else None
        size = int(float(match.group(1)) * _SIZE_B[unit])
    if size < 0:
        raise ValueError(f"size {value!r} must not be negative")
    return size


class Cache(BaseModel):
    """Response cache settings. Off unless given to ``FinOps(cache=...)``.

    Attributes:
        store: ``"diskcache:///abs/dir"`` (default kind; one machine, many processes),
            ``"memory"`` (this process) or ``"redis://host:6379/0"`` (``[redis]`` extra).
        ttl: how long an answer is served (``"7d"``, seconds, or None for no expiry).
        max_size: size limit of the store (least recently used entries go first).
        memory_tier: size of the in-process LRU tier in front of the store (0: none).
        tenant: the tag whose value names the namespace (e.g. ``"user"`` or ``"team"``);
            calls with different values never share an entry. None: one namespace.
        scope: tags a call must carry to be cached (``{"feature": "faq"}``; ``"*"``: any
            value). Empty: every call.
        endpoints: the endpoints cached (default: all of ``ENDPOINTS``).
        semantic: also serve equivalent (not only identical) requests; needs the
            ``[semantic]`` extra.
        semantic_threshold: override the calibrated guard threshold (0..1); None: shipped.
        guard_file: a guard written by ``finops cache calibrate``; None: the shipped one.
        embedder: an object implementing :class:`finops.cache.semantic.Embedder`
            (default: offline MiniLM int8).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    store: str = "diskcache://.finops-cache"
    ttl: str | float | None = "7d"
    max_size: str | int = "1GB"
    memory_tier: str | int = "64MB"
    tenant: str | None = None
    scope: dict[str, str] = Field(default_factory=dict)
    endpoints: frozenset[str] = ENDPOINTS
    semantic: bool = False
    semantic_threshold: float | None = None
    guard_file: str | None = None
    embedder: Any = None

    def __init__(self, **data: Any) -> None:  # keyword-only, errors as ConfigError
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigError(f"invalid cache configuration: {_explain(exc)}") from None

    @field_validator("ttl")
    @classmethod
    def _ttl(cls, value: Any) -> Any:
        parse_duration(value)
        return value

    @field_validator("max_size", "memory_tier")
    @classmethod
    def _size(cls, value: Any) -> Any:
        parse_size(value)
        return value

    @field_validator("endpoints")
    @classmethod
    def _endpoints(cls, value: frozenset[str]) -> frozenset[str]:
        unknown = set(value) - ENDPOINTS
        if unknown:
            raise ValueError(f"unknown endpoint(s) {sorted(unknown)}; known: {sorted(ENDPOINTS)}")
        return value

    @field_validator("semantic_threshold")
    @classmethod
    def _threshold(cls, value: float | None) -> float | None:
        if value is not None and not 0 <= value <= 1:
            raise ValueError("semantic_threshold must be between 0 and 1")
        return value

    @property
    def ttl_s(self) -> float | None:
        """TTL in seconds (None: no expiry)."""
        return parse_duration(self.ttl)

    @property
    def max_bytes(self) -> int:
        """Store size limit in bytes."""
        return parse_size(self.max_size)

    @property
    def memory_bytes(self) -> int:
        """Memory tier size in bytes."""
        return parse_size(self.memory_tier)

    def in_scope(self, tags: Mapping[str, str]) -> bool:
        """Whether a call with ``tags`` is cached."""
        for key, want in self.scope.items():
            have = tags.get(key)
            if have is None or (want != "*" and have != want):
                return False
        return True

    def tenant_of(self, tags: Mapping[str, str]) -> str:
        """The namespace of a call ("" without a tenant tag)."""
        if self.tenant is None:
            return ""
        value = tags.get(self.tenant, "")
        return f"{self.tenant}={value}" if value else ""

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, base_dir: str | Path | None = None) -> Cache:
        """A Cache from a ``[cache]`` TOML table; relative store paths are relative to
        ``base_dir`` (the config file's folder)."""
        settings = dict(data)
        store = settings.get("store")
        if base_dir is not None and isinstance(store, str):
            settings["store"] = _resolve_store(store, Path(base_dir))
        if "endpoints" in settings and isinstance(settings["endpoints"], list):
            settings["endpoints"] = frozenset(settings["endpoints"])
        if "embedder" in settings:
            raise ConfigError(
                "[cache] embedder cannot be set in TOML; pass finops.Cache(embedder=...)"
            )
        return cls(**settings)


def _resolve_store(store: str, base: Path) -> str:
    if store.startswith("diskcache://"):
        path = store[len("diskcache://") :]
        if path and not path.startswith("/"):
            return "diskcache://" + str((base / path).resolve())
        return store
    if "://" in store or store == "memory":
        return store
    return "diskcache://" + str((base / store).resolve())


def load_cache(path: str | Path) -> Cache | None:
    """The ``[cache]`` table of a finops.toml file (None when the file has none)."""
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {file} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {file} is not valid TOML: {exc}") from None
    table = data.get("cache")
    if table is None:
        return None
    if not isinstance(table, Mapping):
        raise ConfigError(f"{file}: [cache] must be a table")
    try:
        return Cache.from_mapping(table, base_dir=file.parent)
    except ConfigError as exc:
        raise ConfigError(f"{file}: {exc}") from None


def _explain(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "cache"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)
