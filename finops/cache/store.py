"""Where cached answers live: a bounded in-process LRU tier in front of a shared store.

Stores hold opaque ``bytes`` under string keys (``"<tenant>:<hash>"``), with a TTL:

- :class:`MemoryStore` — one process, bounded by bytes, LRU eviction ("memory").
- :class:`DiskStore` — ``diskcache`` (SQLite + files) on one machine, shared by every process
  that opens the same directory; size limit with least-recently-used eviction
  ("diskcache:///path/to/dir", the default).
- :class:`RedisStore` — several hosts ("redis://host:6379/0", the ``[redis]`` extra); TTL
  by Redis' own expiry, the size limit is Redis' ``maxmemory`` policy.

:class:`TieredStore` puts a :class:`MemoryStore` (size in MB) in front of the shared store,
so hot entries never touch disk or the network, and counts hits per tier.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from finops.errors import ConfigError

__all__ = [
    "DiskStore",
    "MemoryStore",
    "RedisStore",
    "Store",
    "TierStats",
    "TieredStore",
    "open_store",
]


class Store(Protocol):
    """A key → bytes store with expiry."""

    def get(self, key: str) -> bytes | None:
        """The value, or None if absent or expired."""

    def set(self, key: str, value: bytes, *, ttl_s: float | None) -> None:
        """Store ``value`` (replacing any), expiring after ``ttl_s`` seconds (None: never)."""

    def delete(self, key: str) -> None:
        """Remove a key (no error if absent)."""

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Live keys starting with ``prefix``."""

    def volume(self) -> tuple[int, int]:
        """(number of entries, bytes used)."""

    def log_append(self, item: str, *, ttl_s: float | None) -> None:
        """Append ``item`` to the store's change log (what other processes read to learn
        which semantic entries were added; a no-op for a store only one process sees)."""

    def log_cursor(self) -> str:
        """A cursor at the end of the change log now."""

    def log_read(self, cursor: str) -> tuple[list[str] | None, str]:
        """Items appended after ``cursor`` (oldest first) and the cursor after them; None
        instead of the items when the log no longer holds everything appended after
        ``cursor`` (trimmed past it): the reader must rescan the store."""

    def close(self) -> None:
        """Release files / connections."""


class MemoryStore:
    """A bounded in-process LRU store (thread-safe)."""

    def __init__(
        self, *, max_bytes: int = 64 << 20, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_bytes = int(max_bytes)
        self._clock = clock
        self._data: OrderedDict[str, tuple[bytes, float | None]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        """The value (marked most recently used), or None."""
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return None
            value, expires = item
            if expires is not None and self._clock() >= expires:
                self._drop(key)
                return None
            self._data.move_to_end(key)
            return value

    def set(self, key: str, value: bytes, *, ttl_s: float | None) -> None:
        """Store; evicts least recently used entries beyond ``max_bytes``."""
        size = len(value) + len(key)
        if size > self.max_bytes:
            return
        expires = None if ttl_s is None else self._clock() + ttl_s
        with self._lock:
            if key in self._data:
                self._drop(key)
            self._data[key] = (value, expires)
            self._bytes += size
            while self._bytes > self.max_bytes and self._data:
                self._drop(next(iter(self._data)))

    def _drop(self, key: str) -> None:
        value, _ = self._data.pop(key)
        self._bytes -= len(value) + len(key)

    def delete(self, key: str) -> None:
        """Remove a key."""
        with self._lock:
            if key in self._data:
                self._drop(key)

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Keys starting with ``prefix`` (a snapshot)."""
        with self._lock:
            snapshot = [k for k in self._data if k.startswith(prefix)]
        return iter(snapshot)

    def volume(self) -> tuple[int, int]:
        """(entries, bytes)."""
        return len(self._data), self._bytes

    def log_append(self, item: str, *, ttl_s: float | None) -> None:
        """Nothing: only this process sees a memory store, and it indexes its own puts."""

    def log_cursor(self) -> str:
        """Always ``""``."""
        return ""

    def log_read(self, cursor: str) -> tuple[list[str] | None, str]:
        """Always empty."""
        return [], cursor

    def close(self) -> None:
        """Nothing to release."""


class DiskStore:
    """A ``diskcache`` directory shared by every process on the machine that opens it.

    diskcache serializes writers through SQLite transactions, so concurrent misses for one
    key end with one complete value (the last writer's), never a torn one. The change log
    is a second, small diskcache in ``<directory>/semantic-log``: a counter and one item per
    number, both written in one transaction, so a reader never sees a number before its
    item.
    """

    def __init__(self, directory: str | Path, *, max_bytes: int = 1 << 30) -> None:
        import diskcache

        self.directory = Path(directory)
        self._cache = diskcache.Cache(
            str(self.directory),
            size_limit=int(max_bytes),
            eviction_policy="least-recently-used",
            cull_limit=10,
            statistics=False,
        )
        self._log: Any = None

    def _log_cache(self) -> Any:
        if self._log is None:
            import diskcache

            self._log = diskcache.Cache(
                str(self.directory / "semantic-log"), eviction_policy="none", statistics=False
            )
        return self._log

    def get(self, key: str) -> bytes | None:
        """The value, or None (expired entries are never returned)."""
        value = self._cache.get(key, default=None, retry=True)
        return value if isinstance(value, bytes) else None

    def set(self, key: str, value: bytes, *, ttl_s: float | None) -> None:
        """Store (atomically) with expiry."""
        self._cache.set(key, value, expire=ttl_s, retry=True)

    def delete(self, key: str) -> None:
        """Remove a key."""
        self._cache.delete(key, retry=True)

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Keys starting with ``prefix``."""
        for key in self._cache.iterkeys():
            if isinstance(key, str) and key.startswith(prefix):
                yield key

    def volume(self) -> tuple[int, int]:
        """(entries, bytes on disk)."""
        return len(self._cache), int(self._cache.volume())

    def log_append(self, item: str, *, ttl_s: float | None) -> None:
        """Number the item (``incr``) and store it under its number, in one transaction."""
        log = self._log_cache()
        with log.transact(retry=True):
            n = log.incr(_LOG_SEQ, retry=True)
            log.set(n, item, expire=ttl_s, retry=True)

    def log_cursor(self) -> str:
        """The last number given out."""
        return str(self._log_cache().get(_LOG_SEQ, default=0, retry=True))

    def log_read(self, cursor: str) -> tuple[list[str] | None, str]:
        """Items numbered after ``cursor`` (expired ones are skipped: their entries expired
        with them)."""
        log = self._log_cache()
        last = int(log.get(_LOG_SEQ, default=0, retry=True))
        start = int(cursor or 0)
        if last < start:  # the log directory was removed and started again
            start = 0
        items = [log.get(n, retry=True) for n in range(start + 1, last + 1)]
        return [i for i in items if isinstance(i, str)], str(last)

    def close(self) -> None:
        """Close the SQLite connections."""
        self._cache.close()
        if self._log is not None:
            self._log.close()


class RedisStore:
    """Entries in Redis under ``<prefix><key>``, expiring by Redis' own TTL. The change log is
    a Redis stream next to them (``finops:cache-log``), trimmed to about ``log_length``
    items."""

    def __init__(
        self, url: str, *, prefix: str = "finops:cache:", log_length: int = 200_000
    ) -> None:
        try:
            import redis
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ConfigError(
                "cache store 'redis://...' needs the redis package: pip install 'finops[redis]'"
            ) from exc
        self.url = url
        self.prefix = prefix
        self.log_key = prefix.rstrip(":") + "-log"  # outside the entries' key pattern
        self.log_length = log_length
        self._redis: Any = redis.Redis.from_url(url, socket_timeout=2.0)

    def get(self, key: str) -> bytes | None:
        """The value or None."""
        value = self._redis.get(self.prefix + key)
        return value if isinstance(value, bytes) else None

    def set(self, key: str, value: bytes, *, ttl_s: float | None) -> None:
        """SET with PX expiry."""
        px = None if ttl_s is None else max(1, int(ttl_s * 1000))
        self._redis.set(self.prefix + key, value, px=px)

    def delete(self, key: str) -> None:
        """DEL."""
        self._redis.delete(self.prefix + key)

    def keys(self, prefix: str = "") -> Iterator[str]:
        """SCAN for keys starting with ``prefix``."""
        n = len(self.prefix)
        for raw in self._redis.scan_iter(match=_glob_escape(self.prefix + prefix) + "*", count=500):
            yield raw.decode()[n:]

    def volume(self) -> tuple[int, int]:
        """(entries, bytes) of finops' keys (MEMORY USAGE summed; approximate)."""
        count = size = 0
        for key in self.keys():
            count += 1
            size += int(self._redis.memory_usage(self.prefix + key) or 0)
        return count, size

    def log_append(self, item: str, *, ttl_s: float | None) -> None:
        """XADD, trimming the stream to about ``log_length`` items."""
        self._redis.xadd(self.log_key, {"k": item}, maxlen=self.log_length, approximate=True)

    def log_cursor(self) -> str:
        """The id of the stream's last item (``"0-0"`` for none)."""
        info = self._redis.xrevrange(self.log_key, count=1)
        return info[0][0].decode() if info else "0-0"

    def log_read(self, cursor: str) -> tuple[list[str] | None, str]:
        """XRANGE from ``cursor``, a thousand at a time. Trimming drops the oldest items, so
        while the cursor's own item is still in the stream nothing after it was lost; the
        first XRANGE starts *at* the cursor to see that in the same round trip. A reader
        left behind by the trim (more than ``log_length`` items: its cursor's item gone)
        gets None and the stream's last id, and rescans the store; so does a reader whose
        cursor is ``0-0`` (the log was empty when it loaded) once items were trimmed
        (Redis ≥ 7 counts ``entries-added``; older ones are taken as not trimmed)."""
        items: list[str] = []
        cursor = cursor or "0-0"
        batch = self._redis.xrange(self.log_key, min=cursor, count=1001)
        if batch and batch[0][0].decode() == cursor:
            batch = batch[1:]
        elif batch and (cursor != "0-0" or self._trimmed()):
            return None, self.log_cursor()
        while True:
            for item_id, fields in batch:
                cursor = item_id.decode()
                items.append(fields[b"k"].decode())
            if len(batch) < 1000:
                return items, cursor
            batch = self._redis.xrange(self.log_key, min="(" + cursor, count=1000)

    def _trimmed(self) -> bool:
        """Whether the stream ever dropped an item (Redis ≥ 7; False before)."""
        info = self._redis.xinfo_stream(self.log_key)
        added = info.get("entries-added")
        return added is not None and int(added) > int(info.get("length", 0))

    def close(self) -> None:
        """Close the connection pool."""
        self._redis.close()


_LOG_SEQ = "seq"


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


@dataclass(slots=True)
class TierStats:
    """Lookups of one process: hits per tier, misses, writes."""

    memory_hits: int = 0
    store_hits: int = 0
    misses: int = 0
    writes: int = 0


class TieredStore:
    """A bounded memory tier (LRU, ``memory_bytes``) in front of a shared store.

    A store hit is copied into the memory tier. The memory tier keeps the entry's TTL: it
    never serves an entry the store has expired.
    """

    def __init__(
        self,
        store: Store,
        *,
        memory_bytes: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.memory = MemoryStore(max_bytes=memory_bytes, clock=clock) if memory_bytes > 0 else None
        self.stats = TierStats()
        self._clock = clock

    def get(self, key: str) -> tuple[bytes | None, str]:
        """(value, tier): tier is "memory", "store" or "miss"."""
        if self.memory is not None:
            value = self.memory.get(key)
            if value is not None:
                self.stats.memory_hits += 1
                return value, "memory"
        value = self.store.get(key)
        if value is None:
            self.stats.misses += 1
            return None, "miss"
        self.stats.store_hits += 1
        return value, "store"

    def peek(self, key: str) -> bytes | None:
        """The value from either tier, not counted in :attr:`stats` (a candidate read)."""
        if self.memory is not None:
            value = self.memory.get(key)
            if value is not None:
                return value
        return self.store.get(key)

    def promote(self, key: str, value: bytes, *, ttl_s: float | None) -> None:
        """Copy a store hit into the memory tier (with what remains of its TTL)."""
        if self.memory is not None:
            self.memory.set(key, value, ttl_s=ttl_s)

    def set(self, key: str, value: bytes, *, ttl_s: float | None) -> None:
        """Write through both tiers."""
        self.store.set(key, value, ttl_s=ttl_s)
        if self.memory is not None:
            self.memory.set(key, value, ttl_s=ttl_s)
        self.stats.writes += 1

    def delete(self, key: str) -> None:
        """Remove from both tiers."""
        if self.memory is not None:
            self.memory.delete(key)
        self.store.delete(key)

    def close(self) -> None:
        """Close the shared store."""
        self.store.close()


def open_store(url: str, *, max_bytes: int) -> Store:
    """A store from its URL: "memory", "diskcache:///abs/dir", "diskcache://rel/dir",
    a bare directory path, or "redis://host:port/db"."""
    if url == "memory" or url == "memory://":
        return MemoryStore(max_bytes=max_bytes)
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisStore(url)
    if url.startswith("diskcache://"):
        path = url[len("diskcache://") :]
        if not path:
            raise ConfigError("cache store 'diskcache://' needs a directory: diskcache:///path")
        return DiskStore(path, max_bytes=max_bytes)
    if "://" in url:
        raise ConfigError(
            f"cache store {url!r} is not known: use 'memory', 'diskcache:///path/to/dir' "
            f"or 'redis://host:6379/0'"
        )
    return DiskStore(url, max_bytes=max_bytes)
