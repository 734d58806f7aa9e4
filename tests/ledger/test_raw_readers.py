"""Raw DuckDB readers of the catalog (no finops, no lock) through many compactions and
deletions: writer processes, a compacting process, Python and CLI readers in a loop."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import duckdb
import pytest

from finops.ledger import Ledger
from finops.ledger.layout import LINK_DIRS, link_window_ms, parts_dir_for

# Small windows so that parts really leave the link directories during the run: a part is
# unlinked from a link directory max_query_s after queries stopped reading it.
MAX_QUERY_S = 2.0
RUN_S = 14.0

_WRITER = """
import sys, time
sys.path.insert(0, sys.argv[4])
from conftest import make_row
from finops.ledger import Ledger
path, tag, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
led = Ledger(path, flush_interval_s=0.05, compact_interval_s=3600, max_query_s=float(sys.argv[5]))
end, i = time.monotonic() + seconds, 0
while time.monotonic() < end:
    for _ in range(20):
        led.append(make_row(i, row_id=f"{tag}-{i}"))
        i += 1
    assert led.flush(timeout_s=60)
led.close()
print(i)
"""

_COMPACTOR = """
import json, sys, time
from finops.ledger import compact
path, seconds = sys.argv[1], float(sys.argv[2])
end, merged, deleted = time.monotonic() + seconds, 0, 0
while time.monotonic() < end:
    r = compact(path, grace_s=0.0)
    merged += r.merged_parts
    deleted += r.deleted_parts
    time.sleep(0.2)
print(json.dumps({"merged": merged, "deleted": deleted}))
"""


def _old_duckdb_cli() -> list[str] | None:
    """The DuckDB CLI of the ``duckdb-cli`` package (1.5.x, the dev extra), when installed."""
    import importlib.util

    spec = importlib.util.find_spec("duckdb_cli")
    if spec is None or not spec.submodule_search_locations:
        return None
    binary = Path(next(iter(spec.submodule_search_locations))) / "duckdb"
    return [str(binary)] if binary.exists() else None


@pytest.mark.slow
def test_raw_readers_never_fail_through_compactions(tmp_path: Path, spawn) -> None:
    path = tmp_path / "raw.duckdb"
    Ledger(path, max_query_s=MAX_QUERY_S).close()
    parts = parts_dir_for(path)
    assert link_window_ms(parts) == int(2 * MAX_QUERY_S * 1000)
    tests_dir = str(Path(__file__).resolve().parent)
    writers = [
        spawn(
            _WRITER,
            str(path),
            f"w{n}",
            str(RUN_S),
            tests_dir,
            str(MAX_QUERY_S),
            stdout=subprocess.PIPE,
        )
        for n in range(2)
    ]
    compactor = spawn(_COMPACTOR, str(path), str(RUN_S + 2), stdout=subprocess.PIPE)

    errors: list[str] = []
    reads = {"python": 0, "cli": 0}
    pruned = {"links": 0}
    stop = threading.Event()

    def check(kind: str, got: tuple[int, int], last: list[int]) -> None:
        total, distinct = got
        if total != distinct:
            errors.append(f"{kind}: {total} rows, {distinct} distinct")
        if total < last[0]:
            errors.append(f"{kind}: count went down {last[0]} -> {total}")
        last[0] = max(last[0], total)
        reads[kind] += 1

    def python_reader() -> None:
        held = duckdb.connect(str(path), read_only=True)  # one connection kept open
        last, last_held = [0], [0]
        while not stop.is_set():
            try:
                con = duckdb.connect(str(path), read_only=True)
                got = con.execute("SELECT count(*), count(DISTINCT row_id) FROM calls").fetchone()
                con.close()
                assert got is not None
                check("python", got, last)
                got = held.execute("SELECT count(*), count(DISTINCT row_id) FROM calls").fetchone()
                assert got is not None
                check("python", got, last_held)
            except duckdb.Error as exc:
                errors.append(f"python: {exc}")
        held.close()

    def cli_reader() -> None:
        cli = _old_duckdb_cli()
        if cli is None:
            return
        last = [0]
        sql = "SELECT count(*), count(DISTINCT row_id) FROM calls"
        while not stop.is_set():
            out = subprocess.run(
                [*cli, "-readonly", "-csv", "-noheader", str(path), sql],
                capture_output=True,
                text=True,
                timeout=60,
            )
            if out.returncode != 0:
                errors.append(f"cli: {out.stderr.strip()}")
                continue
            a, b = out.stdout.strip().split(",")
            check("cli", (int(a), int(b)), last)

    def watch_links() -> None:  # parts really leave the link directories during the run
        seen: dict[str, set[str]] = {d: set() for d in LINK_DIRS}
        while not stop.is_set():
            for d in LINK_DIRS:
                now = {p.name for p in (parts / d).glob("*.parquet")}
                pruned["links"] += len(seen[d] - now)
                seen[d] = now
            time.sleep(0.05)

    threads = [threading.Thread(target=f) for f in (python_reader, cli_reader, watch_links)]
    for t in threads:
        t.start()
    try:
        written = [int(w.communicate(timeout=120)[0].strip()) for w in writers]
        result = json.loads(compactor.communicate(timeout=120)[0].strip())
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert not errors, errors[:5]
    assert reads["python"] >= 20, reads
    if _old_duckdb_cli() is not None:
        assert reads["cli"] >= 5, reads
    assert result["merged"] > 10 and result["deleted"] > 10, result
    assert pruned["links"] > 10, pruned  # deleted parts were unlinked from the views' dirs
    con = duckdb.connect(str(path), read_only=True)
    final = con.execute("SELECT count(*), count(DISTINCT row_id) FROM calls").fetchone()
    con.close()
    assert final == (sum(written), sum(written))
