"""Helpers shared by the spine tests (importable because pytest puts tests/ on sys.path)."""

from __future__ import annotations

import dataclasses

import finops


def rows(fo: finops.FinOps, where: str = "TRUE") -> list[dict[str, object]]:
    """All ledger rows (after a flush) as dicts, oldest first."""
    assert fo.flush(timeout_s=30)
    names = [f.name for f in dataclasses.fields(finops.LedgerRow)]
    result = fo.ledger.query(
        f"SELECT {', '.join(names)} FROM calls WHERE {where} ORDER BY ts_start, attempt"
    )
    return [dict(zip(names, r, strict=True)) for r in result]
