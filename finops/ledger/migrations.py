"""Forward-only, numbered schema migrations of the DuckDB ledger.

Each migration is a small named function registered in order; applied ones are recorded in
``_finops_migrations``. A released migration is never edited: a change is a new migration.
A ledger whose recorded migrations include names this code does not know was written by a
newer finops, and opening it raises :class:`~finops.errors.MigrationError`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any

from finops.errors import MigrationError
from finops.ledger.row import LedgerRow

__all__ = ["COLUMN_TYPES", "MIGRATIONS", "migrate"]

Migration = Callable[[Any], None]
MIGRATIONS: list[tuple[str, Migration]] = []

_MONEY = "DECIMAL(38, 12)"
#: DuckDB type of every LedgerRow field (the column order of ``calls`` is the field order).
COLUMN_TYPES: dict[str, str] = {}
for _f in fields(LedgerRow):
    _t = str(_f.type)
    if _f.name in ("ts_start", "ts_end"):
        COLUMN_TYPES[_f.name] = "TIMESTAMPTZ"
    elif "Decimal" in _t:
        COLUMN_TYPES[_f.name] = _MONEY
    elif _f.name == "tags":
        COLUMN_TYPES[_f.name] = "MAP(VARCHAR, VARCHAR)"
    elif _f.name == "server_tool_requests":
        COLUMN_TYPES[_f.name] = "MAP(VARCHAR, BIGINT)"
    elif _t.startswith("int"):
        COLUMN_TYPES[_f.name] = "BIGINT"
    elif _t.startswith("float"):
        COLUMN_TYPES[_f.name] = "DOUBLE"
    elif _t.startswith("bool"):
        COLUMN_TYPES[_f.name] = "BOOLEAN"
    else:
        COLUMN_TYPES[_f.name] = "VARCHAR"


def migration(fn: Migration) -> Migration:
    """Register ``fn`` as the next migration (its name is its identity)."""
    MIGRATIONS.append((fn.__name__, fn))
    return fn


_INPUT = (
    "coalesce(input_tokens,0) + coalesce(cache_read_tokens,0) + coalesce(cache_write_5m_tokens,0)"
    " + coalesce(cache_write_1h_tokens,0) + coalesce(input_audio_tokens,0)"
    " + coalesce(cache_read_audio_tokens,0)"
)
_OUTPUT = (
    "coalesce(output_tokens,0) + coalesce(reasoning_tokens,0) + coalesce(output_audio_tokens,0)"
)
# Rows whose cost is money spent (blocked rows cost nothing; error rows usually have no cost).
_SPEND = "status IN ('ok', 'cancelled', 'error', 'cache_hit')"


@migration
def m001_calls(con: Any) -> None:
    """The ``calls`` table: one row per HTTP attempt (see finops.ledger.row.LedgerRow)."""
    columns = ",\n  ".join(f"{name} {kind}" for name, kind in COLUMN_TYPES.items())
    con.execute(f"CREATE TABLE calls (\n  {columns}\n)")


@migration
def m002_views(con: Any) -> None:
    """Analyst views: spend by day, by tag, by model; estimate accuracy."""
    con.execute(f"""
        CREATE VIEW spend_by_day AS
        SELECT CAST(timezone('UTC', ts_start) AS DATE) AS day, provider,
               coalesce(served_model, requested_model) AS model,
               count(DISTINCT call_id) AS calls, count(*) AS attempts,
               sum({_INPUT}) AS input_tokens, sum({_OUTPUT}) AS output_tokens,
               coalesce(sum(cost_total), 0) AS cost
        FROM calls WHERE {_SPEND}
        GROUP BY ALL
    """)
    con.execute(f"""
        CREATE VIEW spend_by_tag AS
        SELECT e.key AS tag, e.value AS value, CAST(timezone('UTC', ts_start) AS DATE) AS day,
               count(DISTINCT call_id) AS calls, count(*) AS attempts,
               sum({_INPUT}) AS input_tokens, sum({_OUTPUT}) AS output_tokens,
               coalesce(sum(cost_total), 0) AS cost
        FROM (SELECT *, unnest(map_entries(tags)) AS e FROM calls WHERE {_SPEND})
        GROUP BY ALL
    """)
    con.execute(f"""
        CREATE VIEW spend_by_model AS
        SELECT provider, coalesce(served_model, requested_model) AS model,
               count(DISTINCT call_id) AS calls, count(*) AS attempts,
               sum({_INPUT}) AS input_tokens, sum({_OUTPUT}) AS output_tokens,
               coalesce(sum(cost_total), 0) AS cost,
               median(latency_ms) AS median_latency_ms
        FROM calls WHERE {_SPEND}
        GROUP BY ALL
    """)
    con.execute(f"""
        CREATE VIEW estimate_accuracy AS
        WITH e AS (
            SELECT regexp_replace(coalesce(served_model, requested_model),
                                  '-(\\d{{4}}-\\d{{2}}-\\d{{2}}|\\d{{8}})$', '') AS family,
                   est_exact,
                   (est_input_tokens - ({_INPUT})) / ({_INPUT}) AS rel_error
            FROM calls
            WHERE status = 'ok' AND est_input_tokens IS NOT NULL AND ({_INPUT}) > 0
              AND NOT usage_estimated
        )
        SELECT family, est_exact, count(*) AS n,
               avg(rel_error) AS mean_rel_error,
               avg(abs(rel_error)) AS mean_abs_rel_error,
               quantile_cont(abs(rel_error), 0.5) AS median_abs_rel_error,
               quantile_cont(abs(rel_error), 0.95) AS p95_abs_rel_error,
               max(abs(rel_error)) AS max_abs_rel_error
        FROM e GROUP BY ALL ORDER BY family
    """)


@migration
def m003_cache(con: Any) -> None:
    """Cache columns (entry id, similarity, tier) and the ``savings_by_cause`` view."""
    for name in ("cache_entry_id", "cache_similarity", "cache_tier"):
        con.execute(f"ALTER TABLE calls ADD COLUMN IF NOT EXISTS {name} {COLUMN_TYPES[name]}")
    con.execute("""
        CREATE VIEW savings_by_cause AS
        SELECT CAST(timezone('UTC', ts_start) AS DATE) AS day,
               'cache' AS cause, cache_status AS detail,
               coalesce(served_model, requested_model) AS model,
               count(DISTINCT call_id) AS calls,
               coalesce(sum(cost_total), 0) AS cost,
               coalesce(sum(counterfactual_cost), 0) AS counterfactual_cost,
               coalesce(sum(counterfactual_cost - coalesce(cost_total, 0)), 0) AS saved
        FROM calls WHERE status = 'cache_hit'
        GROUP BY ALL
    """)


@migration
def m004_host_cost(con: Any) -> None:
    """The cost a host reports itself (OpenRouter ``usage.cost``) and why it differs."""
    con.execute(f"ALTER TABLE calls ADD COLUMN IF NOT EXISTS host_cost {_MONEY}")
    con.execute("ALTER TABLE calls ADD COLUMN IF NOT EXISTS host_cost_detail VARCHAR")


#: The measured columns of ``savings_by_cause`` (after day, cause, detail), shared by the
#: DuckDB view and the PostgreSQL one (finops/ledger/postgres.py): one definition of "saved".
SAVINGS_MEASURES = """coalesce(served_model, requested_model) AS model,
               count(DISTINCT call_id) AS calls,
               coalesce(sum(cost_total), 0) AS cost,
               coalesce(sum(counterfactual_cost), 0) AS counterfactual_cost,
               coalesce(sum(counterfactual_cost - coalesce(cost_total, 0)), 0) AS saved,
               bool_or(coalesce(counterfactual_estimated, false)) AS estimated,
               sum(route_cpu_us) AS router_cpu_us"""
#: Which rows each cause of ``savings_by_cause`` counts.
SAVINGS_CACHE_ROWS = "status = 'cache_hit'"
SAVINGS_ROUTING_ROWS = "route_decision LIKE 'route:%' AND status IN ('ok', 'cancelled', 'error')"


@migration
def m005_routing(con: Any) -> None:
    """Routing columns (score, policy, router CPU time, estimated counterfactual);
    ``savings_by_cause`` gains the ``routing`` cause beside ``cache`` (same columns first,
    then whether the counterfactual was estimated and the router's CPU time)."""
    for name in ("route_score", "route_policy", "route_cpu_us", "counterfactual_estimated"):
        con.execute(f"ALTER TABLE calls ADD COLUMN IF NOT EXISTS {name} {COLUMN_TYPES[name]}")
    con.execute("DROP VIEW IF EXISTS savings_by_cause")
    con.execute(f"""
        CREATE VIEW savings_by_cause AS
        SELECT CAST(timezone('UTC', ts_start) AS DATE) AS day,
               'cache' AS cause, cache_status AS detail,
               {SAVINGS_MEASURES}
        FROM calls WHERE {SAVINGS_CACHE_ROWS}
        GROUP BY ALL
        UNION ALL
        SELECT CAST(timezone('UTC', ts_start) AS DATE) AS day,
               'routing' AS cause, requested_model AS detail,
               {SAVINGS_MEASURES}
        FROM calls WHERE {SAVINGS_ROUTING_ROWS}
        GROUP BY ALL
    """)


def migrate(con: Any) -> list[str]:
    """Bring the ledger schema up to date; returns the names applied now."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS _finops_migrations ("
        " name VARCHAR PRIMARY KEY, applied_at TIMESTAMPTZ DEFAULT current_timestamp)"
    )
    done = {r[0] for r in con.execute("SELECT name FROM _finops_migrations").fetchall()}
    known = {name for name, _ in MIGRATIONS}
    newer = sorted(done - known)
    if newer:
        raise MigrationError(
            f"this ledger was written by a newer finops (unknown migrations: {', '.join(newer)}); "
            f"upgrade finops to read it, or use a new ledger file"
        )
    applied: list[str] = []
    for name, fn in MIGRATIONS:
        if name in done:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            fn(con)
            con.execute("INSERT INTO _finops_migrations (name) VALUES (?)", [name])
            con.execute("COMMIT")
        except Exception as exc:
            con.execute("ROLLBACK")
            raise MigrationError(f"ledger migration {name} failed: {exc}") from exc
        applied.append(name)
    return applied
