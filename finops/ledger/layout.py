"""The on-disk layout of a local ledger: a catalog file of views over immutable Parquet parts.

::

    finops.duckdb            the *catalog*: a DuckDB file holding only views (``calls``,
                             ``spend_by_day``, ...) and the migration record. Writers open it
                             only to create or migrate it, so analysts can keep it open.
    finops.duckdb.parts/     immutable Parquet *parts*; every process writes its own:
        s-<spool segment>.parquet   one ingested spool segment (a writer cycle, ~0.5 s)
        c-<epoch ms>-<id>.parquet   a compacted part; its Parquet key-value metadata
                                    ``finops_sources`` names the parts it replaces
        c-schema-<hash>.parquet     zero rows, every column: keeps the views bindable
        v0/, v1/                    hard links to the parts: what the views read (below)
    finops.duckdb.spool/     the crash-safe spool segments (see finops.ledger.spool)

The ``calls`` view reads every part and leaves out the parts that a compacted part names as
its sources. A compacted part takes effect ``ACTIVATION_MS`` after its publication (the time
is in its name), for the rows and the replaced parts alike, so every query sees each row
exactly once although DuckDB lists the directory once for the rows and once for the
metadata. Parts
that were compacted away are deleted only after a grace period, and leave the link directory
a query reads only ``max_query_s`` after queries stopped reading it (see ``LINK_DIRS``), so
that a query that listed them can always still open them, even a raw DuckDB reader's.

Every part is written to ``<name>.tmp``, fsync-ed and renamed into place: a reader never
sees a partial file, and a part either exists whole or not at all.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "READERS_LOCK",
    "SCHEMA_PREFIX",
    "SEGMENT_PREFIX",
    "SOURCES_KEY",
    "TEXT_COLUMNS",
    "VIEW_VERSION",
    "compacted_sources",
    "deleting",
    "link_window_ms",
    "parts_dir_for",
    "prune_links",
    "publish_part",
    "reading",
    "sql_str",
    "sync_links",
    "view_sql",
]

SEGMENT_PREFIX = "s-"
COMPACTED_PREFIX = "c-"
SCHEMA_PREFIX = "c-schema-"  # a c- name: the kv-metadata glob of compacted parts is never empty
SOURCES_KEY = "finops_sources"
PARQUET_OPTIONS = "FORMAT parquet, COMPRESSION zstd"

#: Columns that a one-segment part stores as the JSON text of the spool line instead of the
#: typed value: building ``tags`` (a MAP) from its JSON was ~35% of the ingest CPU. The view
#: and compaction build the MAP (``{column: text column}``); see docs/ledger.md "Ingest".
TEXT_COLUMNS = {"tags": "_tags_json"}
#: Version of the ``calls`` view's SQL; a catalog recording an older one gets the new view.
VIEW_VERSION = "2"


def typed_from_text(column: str, kind: str, *, text_present: bool, typed_present: bool) -> str:
    """SQL for ``column`` (of type ``kind``) over parts that may hold its typed value or
    (one-segment parts) the JSON text of it in ``TEXT_COLUMNS[column]``. A text that is not
    that type reads as NULL (as the ingest's TRY_CAST fallback makes it)."""
    text = TEXT_COLUMNS[column]
    conv = f'TRY_CAST(TRY_CAST("{text}" AS JSON) AS {kind})'
    if not typed_present:
        return conv
    typed = f'CAST("{column}" AS {kind})'
    return f"coalesce({typed}, {conv})" if text_present else typed


#: ``<parts>/.readers.lock``: finops readers hold it shared while a query runs (an analyst's
#: :func:`finops.ledger.connect` connection for its lifetime); compaction deletes replaced
#: parts only when it can take it exclusively, so no finops query ever lists a part that is
#: deleted before it opens it (DuckDB's ``Cannot open file``). Raw DuckDB readers of the
#: catalog take no lock (see docs/ledger.md "Known limits").
READERS_LOCK = ".readers.lock"


def _readers_fd(parts: Path) -> int:
    parts.mkdir(parents=True, exist_ok=True)
    return os.open(parts / READERS_LOCK, os.O_RDWR | os.O_CREAT, 0o644)


def reader_lock(parts: Path) -> int:
    """Take the readers' lock shared; returns the descriptor (closing it releases the lock)."""
    fd = _readers_fd(parts)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)  # a deleter holds it exclusively for milliseconds
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def reading(parts: Path) -> Iterator[None]:
    """Hold the readers' lock shared for the duration of a query over ``parts``."""
    fd = reader_lock(parts)
    try:
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def deleting(parts: Path) -> Iterator[bool]:
    """Try to take the readers' lock exclusively; yields whether deleting parts is safe now
    (False while a finops reader runs a query or holds a connection: try again later)."""
    fd = _readers_fd(parts)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def parts_dir_for(path: Path) -> Path:
    """The parts directory of the ledger catalog ``path``."""
    return Path(str(path) + ".parts")


def sql_str(text: str) -> str:
    """``text`` as a SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _glob(parts: Path, prefix: str = "") -> str:
    return sql_str(str(parts.resolve() / f"{prefix}*.parquet"))


# -- link directories: what views read ------------------------------------------------------
#: Every part is hard-linked into both ``<parts>/v0/`` and ``<parts>/v1/``; a query reads the
#: one its start time picks (``epoch_ms // window_ms % 2``). A part that is deleted leaves a
#: link directory only while that directory is *not* the one queries read, and only once it
#: has not been read for ``max_query_s`` (half the window): a query that listed it has
#: finished by then, so even a raw DuckDB reader never lists a file that is gone when it
#: opens it. The canonical file in ``<parts>/`` (what compaction reads) is not read by views.
LINK_DIRS = ("v0", "v1")
LAYOUT_FILE = ".layout.json"
DEFAULT_MAX_QUERY_S = 300.0


def link_window_ms(parts: Path, *, max_query_s: float = DEFAULT_MAX_QUERY_S) -> int:
    """The ledger's link window (ms), fixed when its link directories are first made:
    ``2 * max_query_s`` (the longest query a raw reader may run without seeing a deleted
    part). Creates the link directories and the layout file when missing."""
    layout = parts / LAYOUT_FILE
    try:
        return int(json.loads(layout.read_text())["window_ms"])
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        pass
    parts.mkdir(parents=True, exist_ok=True)
    for d in LINK_DIRS:
        (parts / d).mkdir(exist_ok=True)
    window = max(2, int(2 * max_query_s * 1000))
    tmp = parts / f"{LAYOUT_FILE}.{os.getpid()}.{os.urandom(3).hex()}.tmp"
    tmp.write_text(json.dumps({"window_ms": window}))
    try:
        os.link(tmp, layout)  # the first writer's window wins; never replaced
    except FileExistsError:
        pass
    except OSError:  # no hard links here: exclusive create, same first-writer-wins rule
        with contextlib.suppress(FileExistsError):
            fd = os.open(layout, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            with os.fdopen(fd, "w") as out:
                out.write(json.dumps({"window_ms": window}))
    finally:
        tmp.unlink()
    for _ in range(100):  # the exclusive-create fallback writes after creating: wait for it
        with contextlib.suppress(ValueError, KeyError, TypeError):
            return int(json.loads(layout.read_text())["window_ms"])
        time.sleep(0.01)
    return int(json.loads(layout.read_text())["window_ms"])


def _link_glob(parts: Path, prefix: str = "") -> str:
    """SQL: the glob of the link directory this query reads."""
    window = link_window_ms(parts)
    return (
        f"{sql_str(str(parts.resolve() / 'v'))} || "
        f"CAST((epoch_ms(get_current_timestamp()) // {window}) % 2 AS VARCHAR) || "
        f"{sql_str('/' + prefix + '*.parquet')}"
    )


def _link(src: Path, dst: Path) -> None:
    """Hard-link ``src`` as ``dst``; where the filesystem has no hard links (some network and
    FUSE mounts: ``EPERM``, ``ENOTSUP``...), put a complete copy there instead, atomically (a
    reader never sees a partial file). Raises ``FileExistsError`` if ``dst`` exists and
    ``FileNotFoundError`` if ``src`` is gone, as :func:`os.link` does."""
    try:
        os.link(src, dst)
        return
    except (FileExistsError, FileNotFoundError):
        raise
    except OSError:
        pass
    if dst.exists():
        raise FileExistsError(str(dst))
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.{os.urandom(3).hex()}.tmp")
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def link_part(path: Path) -> None:
    """Link the published part ``path`` into both link directories."""
    for d in LINK_DIRS:
        target = path.parent / d / path.name
        try:
            _link(path, target)
        except FileExistsError:
            pass
        except FileNotFoundError:
            if not path.exists():
                return  # deleted meanwhile (a compactor's victim): nothing to show
            target.parent.mkdir(exist_ok=True)
            with contextlib.suppress(FileExistsError):
                _link(path, target)


def _names(directory: Path) -> set[str]:
    with contextlib.suppress(FileNotFoundError):
        return {e.name for e in os.scandir(directory) if e.name.endswith(".parquet")}
    return set()


def sync_links(parts: Path) -> int:
    """Link every canonical part missing from a link directory (a part published by an older
    finops, or by a process that died between its rename and its links); returns how many."""
    canonical = _names(parts)
    linked = 0
    for d in LINK_DIRS:
        for name in sorted(canonical - _names(parts / d)):
            with contextlib.suppress(FileExistsError, FileNotFoundError):
                _link(parts / name, parts / d / name)
                linked += 1
    return linked


def _prune_order(name: str) -> tuple[int, str]:
    """Parts a compacted part may name go first, compacted parts oldest first: a part that
    excludes another is never unlinked before it (a crash mid-way shows no row twice)."""
    stamped = name.startswith(COMPACTED_PREFIX) and name[2:15].isdigit() and name[15:16] == "-"
    return (1 if stamped else 0, name)


def prune_links(parts: Path, *, clock: Callable[[], float] = time.time) -> int:
    """Unlink, from the link directory queries do not read now, the parts deleted from
    ``<parts>/``, once no query can still be reading that directory; returns how many.

    Only in the second half of a window (queries that listed that directory started over
    half a window, ``max_query_s``, ago) and not in its last tenth (it becomes the one read
    at the next window)."""
    window = link_window_ms(parts)
    canonical = _names(parts)
    removed = 0
    for name_of_dir in LINK_DIRS:
        now_ms = int(clock() * 1000)
        current, into = divmod(now_ms, window)
        if name_of_dir == LINK_DIRS[current % 2]:
            continue
        if not window // 2 <= into <= window - max(1, window // 10):
            continue
        for name in sorted(_names(parts / name_of_dir) - canonical, key=_prune_order):
            with contextlib.suppress(FileNotFoundError):
                (parts / name_of_dir / name).unlink()
                removed += 1
    return removed


def linked_anywhere(parts: Path, name: str) -> bool:
    """Whether a query may still list the part ``name`` (canonical or in a link directory)."""
    return any((parts / d / name).exists() for d in ("", *LINK_DIRS))


#: A compacted part takes effect this long after it is published: until then the view
#: ignores it (its rows are still visible through the parts it replaces). Deciding by the
#: part's name and the query's start time makes both halves of the view (rows, and which
#: parts are replaced) agree, although DuckDB lists the directory twice per query.
ACTIVATION_MS = 5000


def compacted_name(now_ms: int) -> str:
    """Name of a compacted part published at ``now_ms`` (epoch milliseconds)."""
    return f"{COMPACTED_PREFIX}{now_ms:013d}-{os.urandom(4).hex()}.parquet"


def _active(name_sql: str) -> str:
    """SQL: the part named by ``name_sql`` is in effect for this query."""
    return (
        f"coalesce(TRY_CAST(regexp_extract({name_sql}, '^c-([0-9]{{13}})-', 1) AS BIGINT), 0)"
        f" <= epoch_ms(current_timestamp) - {ACTIVATION_MS}"
    )


def view_sql(parts: Path, columns: list[tuple[str, str]]) -> str:
    """The SELECT behind the ``calls`` view: every live part, in ``columns`` order and types,
    read from the link directory of the query's start time."""
    glob = _link_glob(parts)
    cols = ", ".join(
        (
            typed_from_text(name, kind, text_present=True, typed_present=True)
            if name in TEXT_COLUMNS
            else f'CAST("{name}" AS {kind})'
        )
        + f' AS "{name}"'
        for name, kind in columns
    )
    return (
        f"SELECT {cols} FROM read_parquet({glob}, union_by_name = true, filename = true) "
        f"WHERE {_active('parse_filename(filename)')} AND parse_filename(filename) NOT IN ("
        "SELECT unnest(string_split(decode(value), ',')) "
        f"FROM parquet_kv_metadata({_link_glob(parts, COMPACTED_PREFIX)}) "
        f"WHERE decode(key) = '{SOURCES_KEY}' AND {_active('parse_filename(file_name)')})"
    )


def compacted_sources(con: Any, parts: Path) -> dict[str, tuple[str, ...]]:
    """``{compacted part name: names of the parts it replaces}`` as the directory is now."""
    rows = con.execute(
        "SELECT parse_filename(file_name), decode(value) "
        f"FROM parquet_kv_metadata({_glob(parts, COMPACTED_PREFIX)}) "
        f"WHERE decode(key) = '{SOURCES_KEY}'"
    ).fetchall()
    return {name: tuple(s for s in value.split(",") if s) for name, value in rows}


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def publish_part(
    con: Any,
    select: str,
    dest: Path,
    *,
    sources: list[str] | None = None,
    sync: bool = True,
    name_now: Callable[[], str] | None = None,
) -> Path:
    """Write the result of ``select`` as the Parquet part ``dest``, atomically.

    ``sources``: names of the parts this one replaces (a compaction), stored in the part's
    key-value metadata. ``name_now``: the final name, chosen right before the rename (a
    compacted part's name carries its publication time). Returns the published path.
    """
    tmp = dest.with_name(dest.name + ".tmp")
    options = PARQUET_OPTIONS
    if sources:
        options += f", KV_METADATA {{{SOURCES_KEY}: {sql_str(','.join(sources))}}}"
    try:
        con.execute(f"COPY ({select}) TO {sql_str(str(tmp))} ({options})")
        if sync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        if name_now is not None:
            dest = dest.with_name(name_now())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    link_part(dest)  # visible to readers from here on
    if sync:
        _fsync_dir(dest.parent)
    return dest


def _seed_columns(columns: list[tuple[str, str]]) -> list[tuple[str, str]]:
    names = {name for name, _ in columns}
    return [*columns, *((t, "VARCHAR") for c, t in TEXT_COLUMNS.items() if c in names)]


def schema_seed_name(columns: list[tuple[str, str]]) -> str:
    """File name of the zero-row part that carries exactly ``columns`` (and their text
    columns, so that the view binds before any one-segment part exists)."""
    digest = hashlib.sha256(repr(_seed_columns(columns)).encode()).hexdigest()[:16]
    return f"{SCHEMA_PREFIX}{digest}.parquet"


def ensure_schema_seed(con: Any, parts: Path, columns: list[tuple[str, str]]) -> None:
    """Make sure a zero-row part with every column exists (the views bind on an empty ledger
    and right after a migration adds a column)."""
    dest = parts / schema_seed_name(columns)
    if dest.exists():
        return
    cols = ", ".join(f'CAST(NULL AS {kind}) AS "{name}"' for name, kind in _seed_columns(columns))
    publish_part(con, f"SELECT {cols} WHERE false", dest)
