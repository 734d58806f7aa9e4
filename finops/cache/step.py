"""``CacheStep``: serve a repeated (or, opt-in, equivalent) request from the cache.

Where it sits (finops/pipeline/compose.py): after the stream-usage and unknown-model steps,
before routing, the estimate and the budget reservation. So a hit ends the chain: nothing is
estimated, nothing is reserved, no budget can refuse it, and no request is sent.

* ``before``: per-call ``finops_cache=False`` → ``bypass``; ``finops_cache="refresh"`` →
  ``refresh`` (no lookup; the new answer replaces the stored one); out of scope (tags) →
  the step does nothing. Otherwise look the exact key up (memory tier, then store), then,
  with ``semantic=True``, the semantic index of the call's context key. A hit returns
  :class:`~finops.pipeline.call.Served` (JSON, or SSE for a stream request); a miss asks
  for the raw response bytes (``call.capture``).
* ``on_row``: a hit's row gets ``status="cache_hit"``, zero cost and
  ``counterfactual_cost`` = the replayed answer's usage priced for the requested model at
  today's prices (what the meter computed from the served bytes); every row gets
  ``cache_status`` and, for hits, ``cache_entry_id``/``cache_similarity``/``cache_tier``.
  A miss that will be stored carries the new entry's id.
* ``after``: store the answer of a miss or refresh if it is complete and successful
  (HTTP 200, whole body or stream, no error event). Errors, 429s, overloaded, truncated and
  cancelled streams are never stored.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from finops.cache import replay
from finops.cache.config import Cache
from finops.cache.entry import Entry
from finops.cache.key import RequestKey, Uncacheable, request_key
from finops.cache.store import TieredStore, open_store
from finops.errors import ConfigError
from finops.pipeline.call import Call, Outcome, Served
from finops.pipeline.step import Step

if TYPE_CHECKING:
    from finops.cache.semantic import Embedder, Guard, SemanticIndex, Tokens
    from finops.ledger.row import LedgerRow

__all__ = ["CacheStep", "Lookup", "ResponseCache"]

log = logging.getLogger("finops")

_ZERO = Decimal(0)
#: Endpoints whose answers have no stream form the cache can replay.
_NO_STREAM_FORM = frozenset({"invoke_model", "embed_content", "embeddings"})
_COST_FIELDS = (
    "cost_input",
    "cost_cache_read",
    "cost_cache_write",
    "cost_output",
    "cost_tools",
    "cost_steps",
)


@dataclass(slots=True)
class Lookup:
    """What the cache decided for one call."""

    status: str  # exact_hit | semantic_hit | miss | bypass | refresh
    key: RequestKey | None = None
    entry: Entry | None = None
    served: Served | None = None
    tier: str | None = None
    similarity: float | None = None
    new_id: str | None = None  # id the answer of a miss/refresh will be stored under
    tags: Mapping[str, str] | None = None


class ResponseCache:
    """Lookup and store of answers, independent of the call path (used by the step, the
    CLI and the benchmark)."""

    def __init__(self, config: Cache, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self._clock = clock
        self.store = TieredStore(
            open_store(config.store, max_bytes=config.max_bytes),
            memory_bytes=config.memory_bytes,
        )
        self._ttl = config.ttl_s
        self._embedder: Embedder | None = None
        self._guard: Guard | None = None
        self._index: SemanticIndex | None = None
        self._index_lock = threading.Lock()
        self._log_cursor: str | None = None  # None: the index is not loaded yet
        self._refreshed = 0.0
        #: full store rescans after a gap in the change log (not counting the first load)
        self.rescans = 0
        if config.semantic:
            self._setup_semantic()

    # -- semantic ------------------------------------------------------------------------
    def _setup_semantic(self) -> None:
        from finops.cache.semantic import MiniLMEmbedder, SemanticIndex, load_guard

        guard = load_guard(self.config.guard_file)
        if self.config.semantic_threshold is not None:
            from dataclasses import replace

            guard = replace(guard, threshold=self.config.semantic_threshold)
        embedder = self.config.embedder or MiniLMEmbedder()
        if not hasattr(embedder, "embed") or not hasattr(embedder, "dim"):
            raise ConfigError("Cache(embedder=...) must implement finops.cache.semantic.Embedder")
        if isinstance(embedder, MiniLMEmbedder):  # load off the caller's first lookup
            threading.Thread(
                target=_warm_quietly, args=(embedder,), name="finops-embedder-warm", daemon=True
            ).start()
        if guard.uses_tokens and not callable(getattr(embedder, "embed_tokens", None)):
            raise ConfigError(
                f"the semantic guard {self.config.guard_file or '(shipped)'} reads token states, "
                f"which {type(embedder).__name__} does not give (no embed_tokens): calibrate a "
                f"guard for it (finops.cache.calibrate.calibrate(pairs, embedder=...)) and "
                f"pass Cache(guard_file=...)"
            )
        if guard.embedder != getattr(embedder, "name", "") and self.config.guard_file is None:
            log.warning(
                "finops: the shipped semantic guard was calibrated for %s, not %s; "
                "run 'finops cache calibrate' for your embedder",
                guard.embedder,
                getattr(embedder, "name", type(embedder).__name__),
            )
        self._embedder, self._guard = embedder, guard
        self._index = SemanticIndex(dim=int(embedder.dim))

    def _loaded_index(self) -> SemanticIndex:
        """The semantic index: filled from the store on first use (entries of any process),
        then brought up to date from the store's change log at most every
        ``semantic_refresh`` seconds (entries other processes added since)."""
        assert self._index is not None
        with self._index_lock:
            store = self.store.store
            if self._log_cursor is None:
                self._rescan()
            elif self._clock() - self._refreshed >= self.config.semantic_refresh_s:
                self._refreshed = self._clock()
                keys, self._log_cursor = store.log_read(self._log_cursor)
                if keys is None:  # the log was trimmed past what this process read
                    log.info("finops: the cache change log lost items; rescanning the store")
                    self.rescans += 1
                    self._rescan()
                    return self._index
                for key in keys:
                    if not self._index.has(key):
                        self._index_entry(key)
        return self._index

    def _rescan(self) -> None:
        """Index every semantic entry in the store (those not indexed yet), then follow the
        change log from its end now (taken before the scan: what is added meanwhile is read
        again, and indexing is once per key)."""
        assert self._index is not None
        store = self.store.store
        cursor = store.log_cursor()
        for key in list(store.keys()):
            if not self._index.has(key):
                self._index_entry(key)
        self._log_cursor, self._refreshed = cursor, self._clock()

    def _index_entry(self, key: str) -> None:
        assert self._index is not None
        data = self.store.store.get(key)
        if data is None:
            return
        try:
            entry = Entry.decode(data, with_body=False)
        except (ValueError, KeyError):
            return
        if entry.context and entry.text is not None and entry.vector is not None:
            self._index.add(entry.context, key, entry.text, entry.vector)

    # -- lookup / store ------------------------------------------------------------------
    def key_of(self, call: Call) -> RequestKey:
        """The keys of a call (tenant from its tags)."""
        return request_key(
            wire=call.provider,
            endpoint=call.endpoint,
            kwargs=call.kwargs,
            tenant=self.config.tenant_of(call.tags),
        )

    def applies(self, call: Call) -> bool:
        """Whether this call is cached at all (endpoint and tag scope)."""
        if call.stream and call.endpoint in _NO_STREAM_FORM:
            return False  # Bedrock InvokeModelWithResponseStream: model-specific stream bodies
        return call.endpoint in self.config.endpoints and self.config.in_scope(call.tags)

    def lookup(self, call: Call) -> Lookup:
        """Exact, then semantic lookup for a call (no bypass/refresh handling here)."""
        key = self.key_of(call)
        data, tier = self.store.get(key.exact)
        if data is not None:
            try:
                entry = Entry.decode(data)
                served = entry.served(stream=call.stream)
            except (ValueError, KeyError, json.JSONDecodeError):
                served = None
            if served is not None:
                if tier == "store":
                    self.store.promote(key.exact, data, ttl_s=self._remaining(entry))
                return Lookup("exact_hit", key, entry, served, tier)
        if self._index is not None and key.context is not None and key.text is not None:
            hit = self._semantic(call, key)
            if hit is not None:
                return hit
        return Lookup("miss", key, new_id=_new_id())

    def _semantic(self, call: Call, key: RequestKey) -> Lookup | None:
        assert self._embedder is not None and self._guard is not None
        assert key.context is not None and key.text is not None
        index = self._loaded_index()
        vector, tokens = self._embed(key.text)

        def stored_tokens(stored_key: str) -> Tokens | None:
            from finops.cache.semantic import Tokens

            data = self.store.peek(stored_key)
            if data is None:
                return None
            try:
                encoded = Entry.decode(data, with_body=False).tokens
                theirs = Tokens.decode(encoded) if encoded else None
            except (ValueError, KeyError):
                return None
            return theirs

        match = index.lookup(
            key.context, key.text, vector, self._guard, tokens=tokens, stored_tokens=stored_tokens
        )
        if match is None:
            return None
        data, tier = self.store.get(match.key)
        if data is None:
            return None
        try:
            entry = Entry.decode(data)
            served = entry.served(stream=call.stream)
        except (ValueError, KeyError, json.JSONDecodeError):
            return None
        if served is None:
            return None
        return Lookup("semantic_hit", key, entry, served, tier, round(match.similarity, 6))

    def _embed(self, text: str) -> tuple[Any, Tokens | None]:
        """The text's vector, and its token states when the guard reads them."""
        assert self._embedder is not None and self._guard is not None
        if self._guard.uses_tokens:
            vectors, tokens = self._embedder.embed_tokens([text])  # type: ignore[attr-defined]
            return vectors[0], tokens[0]
        return self._embedder.embed([text])[0], None

    def _remaining(self, entry: Entry) -> float | None:
        if self._ttl is None:
            return None
        return max(1.0, entry.created + self._ttl - self._clock())

    def put(
        self,
        *,
        key: RequestKey,
        endpoint: str,
        body: bytes,
        content_type: str,
        tags: Mapping[str, str],
        entry_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Entry | None:
        """Store a complete answer (None if it is not one); ``headers`` are replayed with it."""
        form = "sse" if "text/event-stream" in content_type else "json"
        if form == "sse":
            if replay.assemble(endpoint, body) is None:
                return None
        else:
            try:
                if not replay.complete_json(endpoint, json.loads(body)):
                    return None
            except ValueError:
                return None
        vector = tokens = None
        if self._embedder is not None and key.context is not None and key.text is not None:
            vector, tokens = self._embed(key.text)
        entry = Entry(
            id=entry_id or _new_id(),
            created=self._clock(),
            endpoint=endpoint,
            form=form,
            body=body,
            tags=dict(tags),
            context=key.context if vector is not None else None,
            text=key.text if vector is not None else None,
            vector=vector,
            headers=dict(headers) if headers else None,
            tokens=tokens.encode() if tokens is not None else None,
        )
        self.store.set(key.exact, entry.encode(), ttl_s=self._ttl)
        if self._index is not None and vector is not None and key.context is not None:
            self._index.add(key.context, key.exact, key.text or "", vector)
            try:  # tell the other processes sharing the store
                self.store.store.log_append(key.exact, ttl_s=self._ttl)
            except Exception as exc:  # the entry is stored; others find it after a restart
                log.warning("finops: cache change log not written (%r)", exc)
        return entry

    def close(self) -> None:
        """Close the store."""
        self.store.close()


def _new_id() -> str:
    import os

    return os.urandom(8).hex()


class CacheStep(Step):
    """The cache in the call path (see the module docstring)."""

    name = "cache"
    options: ClassVar[frozenset[str]] = frozenset({"finops_cache"})

    def __init__(self, cache: ResponseCache) -> None:
        self.cache = cache
        self._calls: OrderedDict[str, Lookup] = OrderedDict()
        self._lock = threading.Lock()

    def _remember(self, call: Call, lookup: Lookup) -> None:
        with self._lock:
            self._calls[call.call_id] = lookup
            while len(self._calls) > 10_000:  # calls that never sent (never-entered managers)
                self._calls.popitem(last=False)

    def before(self, call: Call) -> Served | None:
        """Serve a hit; on a miss, ask for the response bytes."""
        option = call.options.get("finops_cache", True)
        if option not in (True, False, "refresh"):
            raise ConfigError(
                f"finops_cache={option!r} is not an option: use False (bypass) or 'refresh' "
                f"(nothing was sent)"
            )
        if not self.cache.applies(call):
            return None
        if option is False:
            call.row["cache_status"] = "bypass"
            return None
        if option == "refresh":
            try:
                key = self.cache.key_of(call)
            except Uncacheable:
                call.row["cache_status"] = "bypass"
                return None
            lookup = Lookup("refresh", key, new_id=_new_id(), tags=call.tags)
        else:
            try:
                lookup = self.cache.lookup(call)
            except Uncacheable:
                call.row["cache_status"] = "bypass"  # e.g. Gemini tools as Python callables
                return None
            except Exception as exc:  # a broken store never breaks the call: it is a miss
                log.warning("finops: cache lookup failed (%r); calling the provider", exc)
                call.row["cache_status"] = "miss"
                return None
            lookup.tags = call.tags
        call.row["cache_status"] = lookup.status
        if lookup.served is not None:
            assert lookup.entry is not None
            call.row["cache_entry_id"] = lookup.entry.id
            call.row["cache_tier"] = lookup.tier
            if lookup.similarity is not None:
                call.row["cache_similarity"] = lookup.similarity
            self._remember(call, lookup)
            return lookup.served
        call.capture = True
        self._remember(call, lookup)
        return None

    def on_row(self, call: Call, row: LedgerRow) -> None:
        """A hit costs nothing; it records what it would have cost."""
        if call.served is not None and row.cache_status in ("exact_hit", "semantic_hit"):
            row.status = "cache_hit"
            row.counterfactual_cost = row.cost_total
            for name in _COST_FIELDS:
                if getattr(row, name) is not None:
                    setattr(row, name, _ZERO)
            row.cost_total = _ZERO
            return
        if row.cache_status in ("miss", "refresh") and call.complete and row.status == "ok":
            lookup = self._calls.get(call.call_id)
            if lookup is not None:
                row.cache_entry_id = lookup.new_id

    def after(self, call: Call, outcome: Outcome) -> None:
        """Store a complete answer of a miss or refresh."""
        with self._lock:
            lookup = self._calls.pop(call.call_id, None)
        if lookup is None or lookup.status not in ("miss", "refresh") or call.served is not None:
            return
        if not outcome.complete or outcome.http_status != 200 or not outcome.body:
            return
        if outcome.status not in ("ok", None):
            return
        assert lookup.key is not None
        self.cache.put(
            key=lookup.key,
            endpoint=call.endpoint,
            body=outcome.body,
            content_type=outcome.content_type or "",
            tags=lookup.tags or {},
            entry_id=lookup.new_id,
            headers=outcome.headers,
        )


def build(config: Any) -> CacheStep | None:
    """The cache step for a FinOps ``cache=`` setting (a :class:`Cache` or a mapping)."""
    if config is None or config is False:
        return None
    if isinstance(config, Mapping):
        config = Cache.from_mapping(config)
    if not isinstance(config, Cache):
        raise ConfigError(f"cache= must be a finops.Cache, got {type(config).__name__}")
    return CacheStep(ResponseCache(config))


def _warm_quietly(embedder: Any) -> None:
    """Background load of the default embedder; a failure is raised again by the first lookup."""
    try:
        embedder.warm()
    except Exception as exc:
        log.debug("finops cache: embedder warm-up failed (the first lookup retries): %r", exc)
