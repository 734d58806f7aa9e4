"""Compaction: fold many small parts into one, safely while writers and readers run.

One compactor at a time (``flock`` on ``<parts>/.compact.lock``; a second one simply skips).
A compaction writes one new part holding the rows of its inputs (de-duplicated by
``row_id``), whose metadata names the inputs; the rename that publishes it is the instant
the view switches from the inputs to it. Inputs are deleted ``grace_s`` later.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finops.ledger.layout import (
    ACTIVATION_MS,
    SCHEMA_PREFIX,
    SEGMENT_PREFIX,
    TEXT_COLUMNS,
    compacted_name,
    compacted_sources,
    deleting,
    linked_anywhere,
    prune_links,
    publish_part,
    sql_str,
    sync_links,
    typed_from_text,
)
from finops.ledger.migrations import COLUMN_TYPES

__all__ = ["CompactResult", "compact"]


@dataclass
class CompactResult:
    """What one :func:`compact` did."""

    merged_parts: int = 0  #: input parts folded into the new part
    rows: int = 0  #: rows in the new part
    new_part: str | None = None
    deleted_parts: int = 0  #: replaced parts deleted (their grace period was over)
    deferred_parts: int = 0  #: due for deletion but kept: a finops reader was reading
    skipped: str | None = None  #: why nothing was done (another compactor runs, ...)


def _live_parts(parts: Path, excluded: set[str]) -> list[Path]:
    return sorted(
        p
        for p in parts.glob("*.parquet")
        if p.name not in excluded and not p.name.startswith(SCHEMA_PREFIX)
    )


#: A one-segment part (``tags`` still JSON text, see layout.TEXT_COLUMNS) older than this
#: is folded by the automatic compaction even when fewer than ``min_parts`` wait: a query on
#: ``tags`` over it builds the MAP for every row (~10x the CPU of reading a compacted part).
SEGMENT_MAX_AGE_S = 30.0


def _level(p: Path) -> int:
    if p.name.startswith(SEGMENT_PREFIX):
        return 0  # one-segment parts fold with the small ones whatever their size
    try:
        size = p.stat().st_size
    except FileNotFoundError:
        return 0
    level, bound = 0, 256 * 1024
    while size >= bound:
        level, bound = level + 1, bound * 8
    return level


def _projection(con: Any, files: str) -> str:
    """``*``, with each column that one-segment parts store as text (``tags``) built into
    its typed value, so that a compacted part holds the plain ``calls`` columns."""
    present = {
        str(r[0])
        for r in con.execute(
            f"DESCRIBE SELECT * FROM read_parquet({files}, union_by_name = true)"
        ).fetchall()
    }
    drop: list[str] = []
    built: list[str] = []
    for column, text in TEXT_COLUMNS.items():
        if text not in present:
            continue
        typed = column in present
        drop.extend([f'"{text}"', *([f'"{column}"'] if typed else [])])
        expr = typed_from_text(column, COLUMN_TYPES[column], text_present=True, typed_present=typed)
        built.append(f'{expr} AS "{column}"')
    if not built:
        return "*"
    return f"* EXCLUDE ({', '.join(drop)}), {', '.join(built)}"


def _age(p: Path, now: float) -> float:
    try:
        return now - p.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def compact(
    con: Any,
    parts: Path,
    *,
    min_parts: int = 2,
    min_age_s: float = 0.0,
    grace_s: float = 300.0,
    max_part_bytes: int = 256 * 1024 * 1024,
    max_inputs: int = 4096,
    tiered: bool = False,
    clock: Any = time.time,
) -> CompactResult:
    """Compact the parts under ``parts`` using the DuckDB connection ``con``.

    Merges the live parts that are at least ``min_age_s`` old and smaller than
    ``max_part_bytes`` (at most ``max_inputs`` of them) when there are ``min_parts`` or
    more; deletes the parts replaced at least ``grace_s`` ago. ``tiered`` (what the
    writers' automatic compaction uses): only merge parts of similar size (size classes a
    factor of 8 apart, the smallest class with ``min_parts`` parts), so that a big part is
    not rewritten every time a few small ones arrive; one-segment parts count as the
    smallest class, and one older than ``SEGMENT_MAX_AGE_S`` is folded even alone.
    """
    result = CompactResult()
    parts.mkdir(parents=True, exist_ok=True)
    fd = os.open(parts / ".compact.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            result.skipped = "another compaction is running"
            return result
        now = clock()
        sources = compacted_sources(con, parts)
        excluded = {s for names in sources.values() for s in names}

        # 1. Delete what was replaced long enough ago (its replacement is older than grace),
        # when no finops reader runs a query (else at a later compaction).
        victims: list[str] = []
        for name, names in sources.items():
            try:
                age = now - (parts / name).stat().st_mtime
            except FileNotFoundError:
                continue
            if age < grace_s + ACTIVATION_MS / 1000:  # in effect, then grace_s more
                continue
            victims.extend(v for v in names if (parts / v).exists())
        # Deleting the canonical file hides nothing from queries (they read the link
        # directories); prune_links then unlinks it from the link directory no query reads.
        with deleting(parts) as safe:
            if not safe:
                result.deferred_parts = len(victims)
            for victim in victims if safe else ():
                # a later part names victim's own sources too: safe
                with contextlib.suppress(FileNotFoundError):
                    (parts / victim).unlink()
                    result.deleted_parts += 1
            if safe:
                prune_links(parts, clock=clock)
        sync_links(parts)  # parts an older finops published, or whose links a crash lost

        # 2. Merge small live parts.
        candidates = []
        for p in _live_parts(parts, excluded):
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            if st.st_size < max_part_bytes and now - st.st_mtime >= min_age_s:
                candidates.append(p)
        if tiered:
            levels: dict[int, list[Path]] = {}
            for p in candidates:
                levels.setdefault(_level(p), []).append(p)
            chosen = [g for _, g in sorted(levels.items()) if len(g) >= min_parts]
            if not chosen and any(
                p.name.startswith(SEGMENT_PREFIX) and _age(p, now) >= SEGMENT_MAX_AGE_S
                for p in levels.get(0, ())
            ):
                chosen, min_parts = [levels[0]], 1
            candidates = chosen[0] if chosen else []
        candidates = candidates[:max_inputs]
        if len(candidates) < min_parts:
            result.skipped = result.skipped or f"{len(candidates)} part(s) to merge"
            return result
        # The new part replaces its inputs and whatever they replaced that still exists.
        merged: list[str] = [p.name for p in candidates]
        for p in candidates:
            # ... as long as a query may still list it (in a link directory), so that
            # the view leaves it out for as long as it can be seen.
            merged.extend(s for s in sources.get(p.name, ()) if linked_anywhere(parts, s))
        files = "[" + ", ".join(sql_str(str(p)) for p in candidates) + "]"
        dest = parts / compacted_name(0)  # renamed at publication: c-<epoch ms>-<id>
        select = (
            f"SELECT {_projection(con, files)} FROM read_parquet({files}, union_by_name = true) "
            "QUALIFY row_number() OVER (PARTITION BY row_id ORDER BY ts_start) = 1 "
            "ORDER BY ts_start"
        )
        dest = publish_part(
            con,
            select,
            dest,
            sources=merged,
            name_now=lambda: compacted_name(int(time.time() * 1000)),
        )
        [(rows,)] = con.execute(
            f"SELECT count(*) FROM read_parquet({sql_str(str(dest))})"
        ).fetchall()
        result.merged_parts, result.rows, result.new_part = len(candidates), int(rows), dest.name
        return result
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
