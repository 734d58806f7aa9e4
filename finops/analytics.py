"""Read-side helpers over the ledger (what ``finops report`` and notebooks use)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

__all__ = ["spend_report"]

_TAG = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")

def spend_report(
    ledger: str | Path, *, by: str = "model"
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Spend grouped by ``model``, ``day``, ``provider`` or a tag name. Returns (header, rows)."""
    from finops.ledger import connect

    if by == "model":
        key = "coalesce(served_model, requested_model, '?')"
    elif by == "day":
        key = "CAST(ts_start AS DATE)"
    elif by == "provider":
        key = "provider"
    elif _TAG.match(by):
        key = f"coalesce(tags['{by}'], '(untagged)')"
    else:
        raise ValueError(f"cannot group by {by!r}: use model, day, provider or a tag name")
    sql = (
        f"SELECT {key} AS {by!r}, count(*) AS attempts, count(DISTINCT call_id) AS calls,"
        " sum(coalesce(input_tokens,0) + coalesce(cache_read_tokens,0)"
        " + coalesce(cache_write_5m_tokens,0) + coalesce(cache_write_1h_tokens,0)"
        " + coalesce(input_audio_tokens,0) + coalesce(cache_read_audio_tokens,0)) AS input_tokens,"
        " sum(coalesce(output_tokens,0) + coalesce(reasoning_tokens,0)"
        " + coalesce(output_audio_tokens,0)) AS output_tokens,"
        " coalesce(sum(cost_total), 0) AS cost_usd"
        " FROM calls GROUP BY 1 ORDER BY cost_usd DESC, 1"
    )
    # In-memory views over the ledger's parts: works while writers run and while an
    # analyst holds the catalog file open.
    with connect(ledger) as con:
        cursor = con.execute(sql.replace(f"AS {by!r}", f'AS "{by}"'))
        header = [d[0] for d in cursor.description]
        return header, cursor.fetchall()
