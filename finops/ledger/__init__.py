"""The ledger: one row per metered HTTP attempt, written by many processes, readable any time.

Public names:

* :class:`Ledger` — the writer every :class:`finops.FinOps` owns (``append``, ``flush``,
  ``query``, ``close``); :mod:`finops.ledger.writer`.
* :class:`LedgerRow`, :data:`STATUSES` — the row contract; :mod:`finops.ledger.row`.
* :func:`connect` — an analyst's DuckDB connection with the ledger's views, which never
  blocks writers; :func:`status` and :func:`compact` — what ``finops ledger status`` and
  ``finops ledger compact`` run; :mod:`finops.ledger.admin`.

Modules: :mod:`~finops.ledger.spool` (the crash-safe spool format),
:mod:`~finops.ledger.layout` (catalog file + Parquet parts on disk),
:mod:`~finops.ledger.catalog` (views and migrations), :mod:`~finops.ledger.compact`,
:mod:`~finops.ledger.stores` (local parts / PostgreSQL behind the writer),
:mod:`~finops.ledger.postgres` (the multi-host mode), :mod:`~finops.ledger.migrations`.
The design and its measurements are in docs/ledger.md.
"""

from __future__ import annotations

from finops.ledger.admin import LedgerStatus, compact, connect, status
from finops.ledger.row import STATUSES, LedgerRow
from finops.ledger.spool import encode as _encode  # noqa: F401  (tools writing spool lines)
from finops.ledger.writer import Ledger

__all__ = ["STATUSES", "Ledger", "LedgerRow", "LedgerStatus", "compact", "connect", "status"]
