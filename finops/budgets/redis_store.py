"""Cross-host budget store: Redis, one Lua script per decision (``[redis]`` extra).

Why Lua: Redis runs a script as one command, with nothing from any other client in
between, so "purge expired holds, read spent and reserved of every matching counter,
compare with each limit, hold in all of them" is atomic across all processes on all
hosts. Counters are plain integers (nano-dollars or tokens) changed with ``HINCRBY``;
amounts cross the Lua boundary as strings and are never formatted by Lua (Lua's
``tostring`` would round big numbers). Comparisons inside Lua use doubles, which are exact
up to 2**53 units: about 9 million USD (or 9e15 tokens) per counter and period.

Keys (all share the hash tag ``{prefix}`` so a script's keys live in one cluster slot)::

    {finops:budgets}:c:<counter id>   hash: spent, reserved, created
    {finops:budgets}:z:<counter id>   sorted set: reservation id -> expiry (unix s)
    {finops:budgets}:a:<counter id>   hash: reservation id -> amount held
    {finops:budgets}:s:<budget>|<period start>   set of scope keys (for status)

Keys expire 7 days after their period ends (never for ``total``). Key and hold expiry
follow the callers' clocks (so an injected clock works): hosts must agree on the time to
well within the reservation TTL.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from finops.budgets.periods import TOTAL_END
from finops.budgets.store import (
    GRACE_S,
    BudgetStore,
    CounterKey,
    CounterState,
    HoldRequest,
    ReserveOutcome,
)
from finops.errors import BudgetBackendUnavailable, ConfigError

__all__ = ["RedisStore"]

T = TypeVar("T")

_PURGE = """
local function purge(c, z, a, now)
  local expired = redis.call('ZRANGEBYSCORE', z, '-inf', now)
  if #expired == 0 then return end
  for _, m in ipairs(expired) do
    local amt = redis.call('HGET', a, m)
    if amt then
      redis.call('HDEL', a, m)
      if amt ~= '0' then redis.call('HINCRBY', c, 'reserved', '-' .. amt) end
    end
  end
  redis.call('ZREMRANGEBYSCORE', z, '-inf', now)
end
"""

# KEYS: 4 per counter (c, z, a, s). ARGV: rid, now, n, then 6 per counter:
# amount, limit, mode, expires, expire_ms (0 = never), scope_key.
_RESERVE = (
    _PURGE
    + """
local rid, now, n = ARGV[1], ARGV[2], tonumber(ARGV[3])
local spent, reserved, overs = {}, {}, {}
local refused = 0
for i = 1, n do
  local k, b = 4 * (i - 1), 3 + 6 * (i - 1)
  local c = KEYS[k + 1]
  purge(c, KEYS[k + 2], KEYS[k + 3], now)
  local v = redis.call('HMGET', c, 'spent', 'reserved')
  local s, r = v[1] or '0', v[2] or '0'
  spent[i], reserved[i] = s, r
  if tonumber(s) + tonumber(r) + tonumber(ARGV[b + 1]) > tonumber(ARGV[b + 2]) then
    local mode = ARGV[b + 3]
    if mode == 'd' then return {'downgrade', i, s, r} end
    if mode == 'e' then
      if refused == 0 then refused = i end
    else
      table.insert(overs, i)
    end
  end
end
if refused > 0 then return {'refused', refused, spent[refused], reserved[refused]} end
for i = 1, n do
  local k, b = 4 * (i - 1), 3 + 6 * (i - 1)
  local c, z, a, sk = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4]
  local amount = ARGV[b + 1]
  redis.call('ZADD', z, ARGV[b + 4], rid)
  redis.call('HSET', a, rid, amount)
  redis.call('HSETNX', c, 'spent', '0')
  redis.call('HSETNX', c, 'created', now)
  if amount ~= '0' then redis.call('HINCRBY', c, 'reserved', amount) end
  redis.call('SADD', sk, ARGV[b + 6])
  if ARGV[b + 5] ~= '0' then
    for _, key in ipairs({c, z, a, sk}) do redis.call('PEXPIRE', key, ARGV[b + 5]) end
  end
end
local out = {'ok', 0, '', ''}
for _, i in ipairs(overs) do
  table.insert(out, i); table.insert(out, spent[i]); table.insert(out, reserved[i])
end
return out
"""
)

# KEYS: 4 per counter (c, z, a, s). ARGV: rid, now, n, then 3 per counter:
# amount to charge, expire_ms, scope_key.
_SETTLE = """
local rid, now, n = ARGV[1], ARGV[2], tonumber(ARGV[3])
for i = 1, n do
  local k, b = 4 * (i - 1), 3 + 3 * (i - 1)
  local c, z, a, sk = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4]
  local amt = redis.call('HGET', a, rid)
  if amt then
    redis.call('HDEL', a, rid)
    redis.call('ZREM', z, rid)
    if amt ~= '0' then redis.call('HINCRBY', c, 'reserved', '-' .. amt) end
  end
  local charge = ARGV[b + 1]
  if charge ~= '0' then
    redis.call('HINCRBY', c, 'spent', charge)
    redis.call('HSETNX', c, 'created', now)
    redis.call('SADD', sk, ARGV[b + 3])
    if ARGV[b + 2] ~= '0' then
      for _, key in ipairs({c, sk}) do redis.call('PEXPIRE', key, ARGV[b + 2]) end
    end
  end
end
return 1
"""

# KEYS: c, s. ARGV: spent, now, expire_ms, scope_key.
_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'spent', ARGV[1], 'reserved', '0', 'created', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[4])
if ARGV[3] ~= '0' then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
return 1
"""

# KEYS: 3 per counter (c, z, a). ARGV: now, n.
_SNAPSHOT = (
    _PURGE
    + """
local now, n = ARGV[1], tonumber(ARGV[2])
local out = {}
for i = 1, n do
  local k = 3 * (i - 1)
  purge(KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], now)
  local v = redis.call('HMGET', KEYS[k + 1], 'spent', 'reserved', 'created')
  table.insert(out, v[1] or ''); table.insert(out, v[2] or ''); table.insert(out, v[3] or '')
end
return out
"""
)

_NEVER = int(TOTAL_END.timestamp())


class RedisStore(BudgetStore):
    """Counters in Redis, shared by every process on every host that uses the same server.

    Args:
        url: ``redis://host:port/db`` (options such as ``?socket_timeout=1`` allowed).
        prefix: key prefix (several finops deployments can share one Redis).
        socket_timeout_s / connect_timeout_s: how long to wait before the store counts as
            unavailable (the manager then applies the fail policy).
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "finops:budgets",
        socket_timeout_s: float = 2.0,
        connect_timeout_s: float = 0.5,
    ) -> None:
        try:
            import redis
        except ModuleNotFoundError:
            raise ConfigError(
                f"budget_store {url!r} needs the redis client: pip install 'finops[redis]'"
            ) from None
        self.url = url
        self._errors: tuple[type[BaseException], ...] = (redis.exceptions.RedisError, OSError)
        self._client = redis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=socket_timeout_s,
            socket_connect_timeout=connect_timeout_s,
        )
        self._tag = "{" + prefix + "}"
        self._reserve = self._client.register_script(_RESERVE)
        self._settle = self._client.register_script(_SETTLE)
        self._create = self._client.register_script(_CREATE)
        self._snapshot = self._client.register_script(_SNAPSHOT)

    def _keys(self, counter: CounterKey) -> list[str]:
        cid = counter.id
        return [
            f"{self._tag}:c:{cid}",
            f"{self._tag}:z:{cid}",
            f"{self._tag}:a:{cid}",
            f"{self._tag}:s:{counter.budget}|{counter.start}",
        ]

    @staticmethod
    def _expire_ms(counter: CounterKey, now: float) -> str:
        # Relative to the caller's (injectable) clock, not the server's: PEXPIRE, not
        # PEXPIREAT, so a test clock in the past does not delete keys on write.
        if counter.end >= _NEVER:
            return "0"
        return str(max(int((counter.end + GRACE_S - now) * 1000), 60_000))

    def _call(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except self._errors as exc:
            raise BudgetBackendUnavailable(
                f"budget store {self.url} cannot be reached: {exc}. Check that Redis is "
                "running and reachable, or set on_unavailable='fail_open' on the budget."
            ) from exc

    # -- BudgetStore -------------------------------------------------------------------
    def exists(self, counter: CounterKey) -> bool:
        key = self._keys(counter)[0]
        return bool(self._call(lambda: self._client.exists(key)))

    def create(self, counter: CounterKey, spent: int, now: float) -> bool:
        keys = self._keys(counter)
        args = [str(spent), repr(now), self._expire_ms(counter, now), counter.scope_key]
        return bool(self._call(lambda: self._create(keys=[keys[0], keys[3]], args=args)))

    def reserve(self, rid: str, requests: Sequence[HoldRequest], now: float) -> ReserveOutcome:
        keys: list[str] = []
        args: list[Any] = [rid, repr(now), len(requests)]
        for req in requests:
            keys.extend(self._keys(req.counter))
            args.extend(
                (
                    str(req.amount),
                    str(req.limit),
                    req.mode,
                    repr(req.expires),
                    self._expire_ms(req.counter, now),
                    req.counter.scope_key,
                )
            )
        raw = self._call(lambda: self._reserve(keys=keys, args=args))
        kind = raw[0]
        if kind != "ok":
            return ReserveOutcome(kind, int(raw[1]) - 1, int(raw[2]), int(raw[3]))
        rest = raw[4:]
        overs = [
            (int(rest[j]) - 1, int(rest[j + 1]), int(rest[j + 2])) for j in range(0, len(rest), 3)
        ]
        return ReserveOutcome("ok", overs=overs)

    def settle(self, rid: str, actual: Sequence[tuple[CounterKey, int]], now: float) -> None:
        keys: list[str] = []
        args: list[Any] = [rid, repr(now), len(actual)]
        for counter, amount in actual:
            keys.extend(self._keys(counter))
            args.extend((str(amount), self._expire_ms(counter, now), counter.scope_key))
        self._call(lambda: self._settle(keys=keys, args=args))

    def snapshot(self, counters: Sequence[CounterKey], now: float) -> list[CounterState]:
        if not counters:
            return []
        keys: list[str] = []
        for counter in counters:
            keys.extend(self._keys(counter)[:3])
        raw = self._call(lambda: self._snapshot(keys=keys, args=[repr(now), len(counters)]))
        out = []
        for j in range(0, len(raw), 3):
            spent, reserved, created = raw[j : j + 3]
            out.append(
                CounterState(
                    int(spent or 0), int(reserved or 0), float(created) if created else None
                )
            )
        return out

    def scope_keys(self, budget: str, start: int) -> list[str]:
        key = f"{self._tag}:s:{budget}|{start}"
        members = self._call(lambda: self._client.smembers(key))
        return sorted(str(m) for m in members)

    def close(self) -> None:
        with contextlib.suppress(*self._errors):
            self._client.close()
