"""The spool: how a :class:`LedgerRow` becomes one line on disk, and how DuckDB reads it back.

A spool line is a JSON array holding the row's fields in :class:`LedgerRow` field order
(the ``calls`` column order). Positional arrays cost ~3 µs less to encode per row than
``{"name": value}`` objects and DuckDB reads them as fast. Money is written as a string
(``str(Decimal)``, exact), times as integer microseconds since the Unix epoch (UTC).

A spool *segment* is one file ``<pid>-<random>-<seq>.jsonl`` written by one process. Its
writer holds an exclusive ``flock`` on it from creation until it has been ingested and
deleted, so a segment nobody holds was left behind by a dead process (an *orphan*). Using
the kernel's lock rather than "is the pid alive" is immune to pid reuse and needs no clock.

Changing :class:`LedgerRow` (a new field appended at the end) keeps old segments readable:
missing trailing elements read as NULL. Reordering or renaming fields would need a new
segment suffix and a reader for the old one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import operator
import os
from collections.abc import Mapping
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from pathlib import Path

from finops.ledger.migrations import COLUMN_TYPES
from finops.ledger.row import LedgerRow

__all__ = [
    "SUFFIX",
    "Segment",
    "claim_orphans",
    "encode",
    "select_sql",
]

SUFFIX = ".jsonl"

_FIELDS = tuple(f.name for f in fields(LedgerRow))
_get_all = operator.attrgetter(*_FIELDS)
_MONEY_IDX = tuple(i for i, n in enumerate(_FIELDS) if COLUMN_TYPES[n].startswith("DECIMAL"))
_TS_IDX = tuple(_FIELDS.index(n) for n in ("ts_start", "ts_end"))
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# allow_nan=False: NaN is not JSON; DuckDB would skip the whole line, silently losing the row.
_dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def encode(row: LedgerRow) -> bytes:
    """One spool line (``\\n``-terminated). Raises TypeError for a value JSON cannot hold."""
    values = list(_get_all(row))
    for i in _MONEY_IDX:
        value = values[i]
        if value is not None:
            values[i] = str(value)
    for i in _TS_IDX:
        value = values[i]
        if value is not None:
            try:  # epoch µs: exact, and ~1 µs cheaper per value than isoformat()
                values[i] = (value - _EPOCH) // _MICROSECOND
            except TypeError:  # a naive datetime: the row contract says UTC
                values[i] = (value.replace(tzinfo=UTC) - _EPOCH) // _MICROSECOND
    try:
        return _dumps(values).encode() + b"\n"
    except ValueError:  # a non-finite float (latency_ms = nan): store NULL, keep the row
        values = [None if isinstance(v, float) and not math.isfinite(v) else v for v in values]
        return _dumps(values).encode() + b"\n"


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def select_sql(
    paths: list[Path], *, strict: bool = False, text_columns: Mapping[str, str] | None = None
) -> str:
    """A SELECT producing ``calls`` rows (all columns, in order) from spool files.

    ``text_columns`` (``{column: name}``): those columns are left as the JSON text the line
    holds, under ``name`` (what a one-segment part stores for ``tags``; the view and
    compaction build the MAP, see :data:`finops.ledger.layout.TEXT_COLUMNS`).

    ``strict=False`` (the safe form): every value goes through TRY_CAST, so one malformed
    value becomes NULL instead of failing the batch, which would otherwise be retried
    forever. ``strict=True`` (the fast form, ~5% less CPU): plain CASTs, which raise on a
    malformed value; the writer tries it first and falls back to the safe form for that
    batch when it raises (see :func:`ingest_select`). Lines that are not JSON (a torn last
    line after a power cut) are skipped by ``ignore_errors`` in both forms.
    """
    files = "[" + ", ".join(_sql_str(str(p)) for p in paths) + "]"
    cast = "CAST" if strict else "TRY_CAST"
    exprs = []
    text_columns = text_columns or {}
    for i, (name, kind) in enumerate(COLUMN_TYPES.items(), start=1):
        if name in text_columns:
            exprs.append(f"j[{i}] AS {text_columns[name]}")
        elif kind.startswith("MAP"):
            # A JSON object arrives as its text; the (statically linked) json extension
            # casts JSON to MAP.
            exprs.append(f"{cast}({cast}(j[{i}] AS JSON) AS {kind}) AS {name}")
        elif kind == "TIMESTAMPTZ":  # epoch microseconds: an instant, whatever the TimeZone
            exprs.append(f"make_timestamptz({cast}(j[{i}] AS BIGINT)) AS {name}")
        else:
            exprs.append(f"{cast}(j[{i}] AS {kind}) AS {name}")
    source = (
        f"read_json({files}, format='newline_delimited', records=false, "
        "columns={'j': 'VARCHAR[]'}, ignore_errors=true)"
    )
    return f"SELECT {', '.join(exprs)} FROM {source} WHERE j[1] IS NOT NULL"


class Segment:
    """One spool file this process writes, locked until it is ingested and deleted."""

    __slots__ = ("fd", "path", "rows")

    def __init__(self, path: Path, *, create: bool = True) -> None:
        self.path = path
        # O_RDWR: a segment whose file was deleted under us can still be read back (re-spooled).
        flags = os.O_RDWR | os.O_APPEND | (os.O_CREAT | os.O_EXCL if create else 0)
        self.fd = os.open(path, flags, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BaseException:
            os.close(self.fd)
            raise
        self.rows = 0

    def read(self) -> bytes:
        """Everything the file holds, read back through this descriptor (works after the
        file was deleted under us)."""
        size = os.fstat(self.fd).st_size
        chunks, offset = [], 0
        while offset < size:
            chunk = os.pread(self.fd, min(1 << 20, size - offset), offset)
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
        return b"".join(chunks)

    def remove(self) -> None:
        """Delete the file, then drop the lock (in that order: nobody may see it unlocked)."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self.release()

    def release(self) -> None:
        """Drop the lock and leave the file for a later replay."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def claim_orphans(spool_dir: Path, *, own_prefix: str) -> list[Segment]:
    """Lock every segment no live process holds (left by a dead one); caller ingests them."""
    claimed: list[Segment] = []
    for path in sorted(spool_dir.glob("*" + SUFFIX)):
        if path.name.startswith(own_prefix):
            continue
        try:
            seg = Segment(path, create=False)
        except (BlockingIOError, FileNotFoundError, PermissionError):
            continue  # a live process holds it, or it was just ingested and deleted
        if os.fstat(seg.fd).st_nlink == 0:  # deleted between glob and lock
            seg.release()
            continue
        claimed.append(seg)
    return claimed
