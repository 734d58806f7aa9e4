"""Stores: TTL, size limits, the memory tier, URLs, several processes on one diskcache."""

from __future__ import annotations

import json
import multiprocessing as mp
import subprocess
import sys
import time
from pathlib import Path

import pytest

import finops
from finops.cache.config import Cache, load_cache, parse_duration, parse_size
from finops.cache.store import (
    DiskStore,
    MemoryStore,
    RedisStore,
    Store,
    TieredStore,
    open_store,
)
from finops.errors import ConfigError


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_memory_store_ttl_and_lru() -> None:
    clock = Clock()
    s = MemoryStore(max_bytes=100, clock=clock)
    s.set("a", b"x" * 40, ttl_s=10)
    s.set("b", b"y" * 40, ttl_s=None)
    assert s.get("a") == b"x" * 40  # a is now most recent
    s.set("c", b"z" * 40, ttl_s=None)  # over 100 bytes: b (least recent) goes
    assert s.get("b") is None and s.get("a") is not None and s.get("c") is not None
    clock.t += 11
    assert s.get("a") is None
    s.set("huge", b"h" * 500, ttl_s=None)
    assert s.get("huge") is None


def test_tiered_store_counts_hits_per_tier(tmp_path: Path) -> None:
    disk = DiskStore(tmp_path / "d")
    t = TieredStore(disk, memory_bytes=1 << 20)
    t.set("k", b"v", ttl_s=None)
    assert t.get("k") == (b"v", "memory")
    other = TieredStore(DiskStore(tmp_path / "d"), memory_bytes=1 << 20)  # a second process
    assert other.get("k") == (b"v", "store")
    other.promote("k", b"v", ttl_s=None)
    assert other.get("k") == (b"v", "memory")
    assert other.get("nope") == (None, "miss")
    assert (other.stats.memory_hits, other.stats.store_hits, other.stats.misses) == (1, 1, 1)


def test_disk_store_ttl_and_size_limit(tmp_path: Path) -> None:
    s = DiskStore(tmp_path / "d", max_bytes=200_000)
    s.set("short", b"1", ttl_s=0.2)
    time.sleep(0.3)
    assert s.get("short") is None
    for i in range(100):
        s.set(f"k{i}", bytes(10_000), ttl_s=None)
    count, volume = s.volume()
    assert volume < 400_000 and count < 100  # evicted down towards the limit
    assert s.get("k99") is not None


def test_urls(tmp_path: Path) -> None:
    assert isinstance(open_store("memory", max_bytes=10), MemoryStore)
    assert isinstance(open_store(f"diskcache://{tmp_path}/x", max_bytes=10), DiskStore)
    assert isinstance(open_store(str(tmp_path / "y"), max_bytes=10), DiskStore)
    with pytest.raises(ConfigError, match="not known"):
        open_store("s3://bucket", max_bytes=10)
    with pytest.raises(ConfigError, match="needs a directory"):
        open_store("diskcache://", max_bytes=10)


def test_config_validation_and_toml(tmp_path: Path) -> None:
    assert (
        parse_duration("7d") == 7 * 86400
        and parse_duration(90) == 90
        and parse_duration(None) is None
    )
    assert parse_size("64MB") == 64_000_000 and parse_size("1GiB") == 2**30
    with pytest.raises(ConfigError, match="ttl"):
        Cache(ttl="soon")
    with pytest.raises(ConfigError, match="stor: Extra inputs"):
        Cache(stor="memory")  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match="endpoint"):
        Cache(endpoints=frozenset({"images"}))
    with pytest.raises(TypeError):
        Cache("memory")  # type: ignore[misc]  # keyword-only
    (tmp_path / "f.toml").write_text(
        '[cache]\nstore = "diskcache://rel"\nttl = "2h"\nscope = { feature = "faq" }\ntenant = "team"\n'
    )
    c = load_cache(tmp_path / "f.toml")
    assert c is not None and c.store == f"diskcache://{(tmp_path / 'rel').resolve()}"
    assert c.ttl_s == 7200 and c.in_scope({"feature": "faq"}) and not c.in_scope({"feature": "x"})
    assert c.tenant_of({"team": "a"}) == "team=a" and c.tenant_of({}) == ""
    (tmp_path / "g.toml").write_text('[cache]\nttl = "never"\n')
    with pytest.raises(ConfigError, match=r"g\.toml"):
        load_cache(tmp_path / "g.toml")


_CHILD = """
import json, sys, openai, finops
store, base, prompt, ledger = sys.argv[1:5]
fo = finops.FinOps(ledger=ledger, cache=finops.Cache(store=store))
client = fo.wrap(openai.OpenAI(api_key="sk-test", base_url=base, max_retries=0))
r = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}])
print(json.dumps(r.choices[0].message.content))
fo.close()
"""


def _child(store: str, base: str, prompt: str, ledger: Path) -> str:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, store, base, prompt, str(ledger)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return str(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.slow
def test_processes_share_a_diskcache_store(tmp_path: Path, devserver: finops.DevServer) -> None:
    store = f"diskcache://{tmp_path / 'shared'}"
    first = _child(store, devserver.openai_base_url, "shared prompt", tmp_path / "a.duckdb")
    posts = sum(r.method == "POST" for r in devserver.requests)
    second = _child(store, devserver.openai_base_url, "shared prompt", tmp_path / "b.duckdb")
    assert second == first
    assert sum(r.method == "POST" for r in devserver.requests) == posts == 1


def _race(store: str, base: str, ledger: str, results: mp.Queue[str]) -> None:
    results.put(_child(store, base, "the same cold prompt", Path(ledger)))


@pytest.mark.slow
def test_concurrent_misses_do_not_corrupt(tmp_path: Path, devserver: finops.DevServer) -> None:
    store = f"diskcache://{tmp_path / 'race'}"
    results: mp.Queue[str] = mp.Queue()
    procs = [
        mp.Process(
            target=_race,
            args=(store, devserver.openai_base_url, str(tmp_path / f"l{i}.duckdb"), results),
        )
        for i in range(4)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    answers = {results.get(timeout=5) for _ in procs}
    assert len(answers) == 1
    disk = DiskStore(tmp_path / "race")
    keys = list(disk.keys())
    assert len(keys) == 1  # one key, one complete entry
    from finops.cache.entry import Entry

    entry = Entry.decode(disk.get(keys[0]) or b"")
    assert json.loads(entry.body)["choices"][0]["message"]["content"] == answers.pop()
    # and it is served
    assert _child(store, devserver.openai_base_url, "the same cold prompt", tmp_path / "z.duckdb")


@pytest.mark.redis
def test_redis_store(redis_url: str) -> None:
    s = open_store(redis_url, max_bytes=0)
    assert isinstance(s, RedisStore)
    s.set("t:a", b"1", ttl_s=None)
    s.set("t:b", b"2", ttl_s=0.2)
    s.set("u:c", b"3", ttl_s=None)
    assert s.get("t:a") == b"1" and sorted(s.keys("t:")) == ["t:a", "t:b"]
    time.sleep(0.35)
    assert s.get("t:b") is None
    assert s.volume()[0] == 2
    s.delete("t:a")
    assert s.get("t:a") is None
    s.close()


def _log_contract(a: Store, b: Store) -> None:
    """Two handles on one shared store: what one appends the other reads, once, in order."""
    start = b.log_cursor()
    a.log_append("t:1", ttl_s=None)
    a.log_append("t:2", ttl_s=None)
    items, cursor = b.log_read(start)
    assert items == ["t:1", "t:2"]
    assert b.log_read(cursor) == ([], cursor)
    a.log_append("t:3", ttl_s=None)
    assert b.log_read(cursor)[0] == ["t:3"]
    assert b.log_cursor() == a.log_cursor()
    assert list(a.keys()) == [] and a.volume()[0] == 0  # the log is not an entry


def test_disk_store_change_log(tmp_path: Path) -> None:
    a, b = DiskStore(tmp_path / "d"), DiskStore(tmp_path / "d")
    _log_contract(a, b)
    a.log_append("t:gone", ttl_s=0.1)
    cursor = b.log_cursor()
    a.log_append("t:kept", ttl_s=None)
    time.sleep(0.2)
    assert b.log_read(str(int(cursor) - 1))[0] == ["t:kept"]  # expired items are skipped
    a.close()
    b.close()


@pytest.mark.redis
def test_redis_store_change_log(redis_url: str) -> None:
    a, b = RedisStore(redis_url), RedisStore(redis_url)
    _log_contract(a, b)
    a.close()
    b.close()


@pytest.mark.redis
def test_redis_change_log_gap_is_detected(redis_url: str) -> None:
    """A reader the trimmed stream left behind is told so (None), not handed a partial list;
    a reader still inside the stream reads on as before."""
    a, b = RedisStore(redis_url, log_length=10), RedisStore(redis_url)
    behind = b.log_cursor()
    a.log_append("t:first", ttl_s=None)
    items, after_first = b.log_read(behind)
    assert items == ["t:first"]
    for i in range(400):
        a.log_append(f"t:{i}", ttl_s=None)
    assert a._redis.xlen(a.log_key) < 400  # trimmed (approximately: whole stream nodes)
    recent = a._redis.xrevrange(a.log_key, count=5)[-1][0].decode()
    items, cursor = b.log_read(after_first)
    assert items is None and cursor == a.log_cursor()  # the gap, and where to go on from
    items, _ = b.log_read(recent)  # inside what the stream kept: no gap
    assert items == ["t:396", "t:397", "t:398", "t:399"]
    assert b.log_read(cursor) == ([], cursor)
    a.close()
    b.close()
