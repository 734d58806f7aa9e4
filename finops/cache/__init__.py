"""The response cache (issue 11): exact keys, stores with a memory tier, stream replay, and
an opt-in semantic cache with a calibrated guard. See docs/cache.md.

    fo = finops.FinOps(cache=finops.Cache(store="diskcache:///var/cache/finops", ttl="7d"))

Only :class:`Cache` is imported here; the step, stores and the semantic parts load when a
FinOps with a cache is built.
"""

from __future__ import annotations

from finops.cache.config import Cache, load_cache

__all__ = ["Cache", "load_cache"]
