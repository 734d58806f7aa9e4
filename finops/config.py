"""The whole configuration schema of finops, checked once, at construction.

Two ways in, one set of rules:

* ``finops.toml`` (:func:`load_config`, used by :meth:`finops.FinOps.from_config`): every
  section and every key is known here. An unknown one raises :class:`~finops.ConfigError`
  naming the file, the key path (``[finops].ledgr``, ``budgets[1].perod``) and what was
  expected, with a did-you-mean (``[[budget]]`` → "did you mean ``[[budgets]]``?").
* keyword arguments of :class:`finops.FinOps` (:func:`check_settings`, called by
  ``FinOps.__init__``): types, a ledger / spool path that can be created, a well-formed
  ``budget_store`` URL, and a price-override file that parses and validates.

Rule: a configuration mistake is a :class:`~finops.ConfigError` at ``FinOps(...)`` /
``FinOps.from_config(...)``, never a warning at the first call. Runtime faults (a full disk,
an unreachable store) keep the metering policy: the user's call is never broken.

Sections (``SECTIONS``): ``[finops]``, ``[ledger]``, ``[[budgets]]``, ``[cache]`` and
``[routing]`` have schemas here. ``[providers]`` is reserved for per-provider settings
(host rules already live in ``[finops].providers``): until a schema is registered, a file
that uses it is refused with a clear message rather than silently ignored.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finops.errors import ConfigError, PriceFileError

if TYPE_CHECKING:
    from finops.pricing import PriceBook

__all__ = [
    "BUDGET_KEYS",
    "FINOPS_KEYS",
    "LEDGER_KEYS",
    "SECTIONS",
    "check_budget_store",
    "check_settings",
    "did_you_mean",
    "load_config",
]


# -- schema ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Key:
    """One setting: the TOML types it accepts and what to tell the user otherwise."""

    types: tuple[type, ...]
    expected: str
    path: bool = False  # a file or directory path: relative to the config file


_STR = (str,)

#: ``[finops]``: the keyword arguments of ``FinOps(...)`` a TOML file may set.
FINOPS_KEYS: dict[str, Key] = {
    "ledger": Key(_STR, "a path to the DuckDB ledger file", path=True),
    "spool_dir": Key(_STR, "a directory path for the crash-safe spool", path=True),
    "prices": Key(_STR, "a directory of price tables", path=True),
    "price_overrides": Key(
        (str, dict), "the path of a JSON/TOML overrides file, or an inline table", path=True
    ),
    "unknown_model": Key(_STR, "'raise', 'zero_flagged' or 'fallback:<model>'"),
    "store_content": Key((bool,), "true or false"),
    "budget_store": Key(_STR, "'memory', 'sqlite:///budgets.db' or 'redis://host:6379/0'"),
    "estimate": Key(_STR, "'auto', 'exact', 'bound' or 'off'"),
    "max_call_cost": Key((str, int, float), "a USD amount per call, e.g. \"0.50\""),
    "providers": Key((dict,), 'a table of host = "provider" rules (docs/providers.md)'),
}

#: ``[ledger]``: the same two ledger settings, in their own section (either place, not both).
LEDGER_KEYS: dict[str, Key] = {
    "path": Key(_STR, "a path to the DuckDB ledger file", path=True),
    "spool_dir": Key(_STR, "a directory path for the crash-safe spool", path=True),
}

#: ``[[budgets]]`` entries: the fields of :class:`finops.Budget` and their allowed values.
BUDGET_KEYS: dict[str, tuple[str, ...] | None] = {
    "name": None,
    "scope": None,
    "limit": None,
    "unit": ("usd", "tokens"),
    "period": ("hour", "day", "week", "month", "total"),
    "tz": None,
    "action": ("raise", "warn", "downgrade"),
    "downgrade_to": None,
    "on_unavailable": ("fail_closed", "fail_open"),
    "reservation_ttl_s": None,
}

#: Top-level names of finops.toml → ``"table"`` or ``"array"`` (``[[...]]``), or
#: ``"reserved"``: a section another feature will define.
#: TO ADD A SECTION (cache, routing, providers): give it a schema next to the ones above,
#: replace its "reserved" entry with "table" and convert it in ``_section_kwargs``.
SECTIONS: dict[str, str] = {
    "finops": "table",
    "ledger": "table",
    "budgets": "array",
    "cache": "table",  # [cache]: finops.Cache (finops/cache/config.py)
    "routing": "table",  # [routing]: finops.Routing (finops/routing/config.py)
    "providers": "reserved",  # [providers] — per-provider settings add their schema here
}


# -- did you mean ------------------------------------------------------------------------


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """``"; did you mean `x`?"`` for the closest choice, or ``""``."""
    import difflib

    options = list(choices)
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    if not close:  # a plural / singular slip or a prefix ("budget", "ledger_path")
        lowered = name.lower()
        close = [
            c
            for c in options
            if lowered and (c.startswith(lowered) or lowered.startswith(c) or c == lowered)
        ][:1]
    return f"; did you mean `{close[0]}`?" if close else ""


def _unknown(where: str, key: str, allowed: Iterable[str], what: str) -> ConfigError:
    names = sorted(allowed)
    return ConfigError(
        f"{where}unknown {what} `{key}`{did_you_mean(key, names)} "
        f"(expected one of: {', '.join(names)})"
    )


# -- finops.toml ---------------------------------------------------------------------------


def load_config(path: str | Path, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Read and check a finops.toml; return the keyword arguments for ``FinOps(...)``.

    ``overrides`` (the keyword arguments given to ``from_config``) replace values from the
    file; their names are checked too. Relative paths in the file are relative to the file.
    """
    import tomllib

    file = Path(path)
    where = f"{file}: "
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {file} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {file} is a directory, not a TOML file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {file} cannot be read: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {file} is not valid TOML: {exc}") from None

    for name, value in data.items():
        kind = SECTIONS.get(name)
        if kind is None:
            hint = did_you_mean(name, SECTIONS)
            if not hint and name in FINOPS_KEYS:
                hint = f"; `{name}` is a setting: put it under [finops]"
            elif not hint:
                hint = did_you_mean(name, FINOPS_KEYS)
                hint = f"{hint[:-1]} (a [finops] setting)?" if hint else ""
            raise ConfigError(
                f"{where}unknown section `{name}`{hint} (expected: "
                + ", ".join(
                    f"[{s}]" if k == "table" else f"[[{s}]]"
                    for s, k in SECTIONS.items()
                    if k != "reserved"
                )
                + ")"
            )
        if kind == "reserved":
            hint = ""
            if name == "providers" and isinstance(value, dict) and value:
                first = next(iter(value))
                hint = (
                    "; host rules go in [finops] as "
                    f'`providers = {{ "{first}" = "{value[first]}" }}`'
                    if all(isinstance(v, str) for v in value.values())
                    else ""
                )
            raise ConfigError(
                f"{where}section [{name}] is not supported by this version of finops "
                f"(remove it, or upgrade finops){hint}"
            )
        if kind == "table" and not isinstance(value, dict):
            raise ConfigError(f"{where}`{name}` must be a table: write [{name}] on its own line")
        if kind == "array" and not (
            isinstance(value, list) and all(isinstance(v, dict) for v in value)
        ):
            raise ConfigError(
                f"{where}`{name}` must be an array of tables: write [[{name}]] before each entry"
            )

    settings = _table(data.get("finops", {}), FINOPS_KEYS, "[finops]", file)
    ledger = _table(data.get("ledger", {}), LEDGER_KEYS, "[ledger]", file)
    for key, target in (("path", "ledger"), ("spool_dir", "spool_dir")):
        if key in ledger:
            if target in settings:
                raise ConfigError(
                    f"{where}[ledger].{key} and [finops].{target} both set the ledger "
                    f"{'path' if key == 'path' else 'spool directory'}: keep one"
                )
            settings[target] = ledger[key]

    for key in ("unknown_model", "estimate"):
        value = settings.get(key)
        if key == "estimate" and isinstance(value, str) and value not in _ESTIMATE_MODES:
            raise ConfigError(
                f"{where}[finops].estimate = {value!r} is not a mode"
                f"{did_you_mean(value, _ESTIMATE_MODES)} (expected one of: "
                f"{', '.join(_ESTIMATE_MODES)})"
            )
        if key == "unknown_model" and isinstance(value, str):
            policies = ("raise", "zero_flagged")
            if value not in policies and not (
                value.startswith("fallback:") and len(value) > len("fallback:")
            ):
                raise ConfigError(
                    f"{where}[finops].unknown_model = {value!r} is not a policy"
                    f"{did_you_mean(value, (*policies, 'fallback:<model>'))} (expected "
                    "'raise', 'zero_flagged' or 'fallback:<model>')"
                )

    store = settings.get("budget_store")
    if isinstance(store, str):
        if store.startswith("sqlite:///") and not store.startswith("sqlite:////"):
            rel = store[len("sqlite:///") :]
            if rel:
                store = "sqlite:///" + str((file.parent / rel).resolve())
        settings["budget_store"] = store
        check_budget_store(store, where=f"{where}[finops].budget_store: ")

    if "budgets" in data:
        settings["budgets"] = _budgets(data["budgets"], file)
    if "cache" in data:
        settings["cache"] = _cache(data["cache"], file)
    if "routing" in data:
        settings["routing"] = _routing(data["routing"], file)

    # Path problems named with the file they come from (FinOps(...) checks them again).
    if isinstance(settings.get("ledger"), str) and not _is_url(settings["ledger"]):
        _check_file_path(Path(settings["ledger"]), "ledger", where=where)
    if isinstance(settings.get("spool_dir"), str):
        _check_dir_path(Path(settings["spool_dir"]), "spool_dir", where=where)
    if isinstance(settings.get("price_overrides"), str):
        check_overrides_file(settings["price_overrides"], where=f"{where}[finops].")

    if overrides:
        import inspect

        # FinOps.__init__'s keyword names (finops.core is loaded: it is the caller; looked
        # up, not imported, so config stays below core in the import graph)
        core = sys.modules.get("finops.core")
        init = getattr(getattr(core, "FinOps", None), "__init__", None)
        allowed = [p for p in inspect.signature(init).parameters if p != "self"] if init else []
        for key in overrides:
            if allowed and key not in allowed:
                raise _unknown(f"FinOps.from_config({file}): ", key, allowed, "keyword argument")
        settings.update(overrides)
    return settings


_ESTIMATE_MODES = ("auto", "exact", "bound", "off")


def _table(
    table: Mapping[str, Any], schema: Mapping[str, Key], label: str, file: Path
) -> dict[str, Any]:
    where = f"{file}: "
    out: dict[str, Any] = {}
    for key, value in table.items():
        spec = schema.get(key)
        if spec is None:
            raise _unknown(where, f"{label}.{key}", [f"{label}.{k}" for k in schema], "setting")
        if not isinstance(value, spec.types) or (
            bool not in spec.types and isinstance(value, bool)
        ):
            raise ConfigError(
                f"{where}{label}.{key} = {value!r}: expected {spec.expected}, "
                f"got {type(value).__name__}"
            )
        if spec.path and isinstance(value, str):
            if not value.strip():
                raise ConfigError(f"{where}{label}.{key} is empty: expected {spec.expected}")
            if not value.startswith(("postgresql://", "postgres://")):  # multi-host ledger URL
                value = str((file.parent / value).resolve())
        out[key] = value
    return out


def _budgets(entries: list[dict[str, Any]], file: Path) -> list[Any]:
    from finops.budgets import load_budgets

    where = f"{file}: "
    for i, entry in enumerate(entries):
        label = f"budgets[{i}]"
        for key, value in entry.items():
            if key not in BUDGET_KEYS:
                raise _unknown(
                    where, f"{label}.{key}", [f"{label}.{k}" for k in BUDGET_KEYS], "budget setting"
                )
            choices = BUDGET_KEYS[key]
            if choices is not None and value not in choices:
                hint = did_you_mean(value, choices) if isinstance(value, str) else ""
                raise ConfigError(
                    f"{where}{label}.{key} = {value!r} is not a known {key}{hint} "
                    f"(expected one of: {', '.join(choices)})"
                )
    try:
        return load_budgets({"budgets": entries})
    except ConfigError as exc:
        raise ConfigError(f"{where}{exc}") from None


def _cache(table: dict[str, Any], file: Path) -> Any:
    from finops.cache.config import Cache

    where = f"{file}: "
    for key in table:
        if key not in Cache.model_fields or key == "embedder":
            allowed = [f"[cache].{k}" for k in Cache.model_fields if k != "embedder"]
            raise _unknown(where, f"[cache].{key}", allowed, "setting")
    try:
        return Cache.from_mapping(table, base_dir=file.parent)
    except ConfigError as exc:
        raise ConfigError(f"{where}[cache]: {exc}") from None


def _routing(table: dict[str, Any], file: Path) -> Any:
    from finops.routing.config import Routing, load_routing

    where = f"{file}: "
    if not isinstance(table, dict):
        raise ConfigError(f"{where}[routing] must be a table, got {type(table).__name__}")
    for key in table:
        if key not in Routing.model_fields:
            allowed = [f"[routing].{k}" for k in Routing.model_fields]
            raise _unknown(where, f"[routing].{key}", allowed, "setting")
    try:
        return load_routing(table, base_dir=str(file.parent))
    except ConfigError as exc:
        raise ConfigError(f"{where}{exc}") from None


# -- keyword arguments ---------------------------------------------------------------------


def _is_url(ledger: object) -> bool:
    return isinstance(ledger, str) and ledger.startswith(("postgresql://", "postgres://"))


def check_settings(
    *,
    ledger: Any,
    spool_dir: Any,
    prices: Any,
    price_overrides: Any,
    store_content: Any,
    budgets: Any,
    budget_store: Any,
    on_budget_warn: Any,
    clock: Any,
) -> PriceBook | None:
    """Check ``FinOps(...)`` arguments; raise :class:`ConfigError` for the first mistake.

    Returns the :class:`~finops.pricing.PriceBook` when ``prices`` / ``price_overrides``
    were given (loading it is how they are validated: it reads the manifest and the
    overrides only, provider tables stay lazy), else None.
    """
    from finops.ledger import Ledger

    if not isinstance(ledger, Ledger):
        if not isinstance(ledger, str | Path) or not str(ledger).strip():
            raise ConfigError(
                f"ledger={ledger!r}: expected a path to the DuckDB ledger file or a finops.Ledger"
            )
        if not _is_url(ledger):  # a postgresql:// ledger (multi-host) has no local file
            _check_file_path(Path(ledger), "ledger")
        if spool_dir is not None:
            if not isinstance(spool_dir, str | Path) or not str(spool_dir).strip():
                raise ConfigError(f"spool_dir={spool_dir!r}: expected a directory path")
            _check_dir_path(Path(spool_dir), "spool_dir")
    if not isinstance(store_content, bool):
        raise ConfigError(f"store_content={store_content!r}: expected True or False")
    if isinstance(budgets, str | bytes | Mapping) or not isinstance(budgets, Iterable):
        raise ConfigError(
            f"budgets={budgets!r}: expected a list of finops.Budget objects "
            "(e.g. budgets=[finops.Budget(limit='50', period='day')])"
        )
    # A BudgetStore instance can only exist if its module was imported: no import here
    # (finops.budgets pulls in pydantic, which FinOps(...) without budgets never needs).
    store_module = sys.modules.get("finops.budgets.store")
    store_type = getattr(store_module, "BudgetStore", None)
    if store_type is None or not isinstance(budget_store, store_type):
        check_budget_store(budget_store, where="")
    for name, fn in (("on_budget_warn", on_budget_warn), ("clock", clock)):
        if fn is not None and not callable(fn):
            raise ConfigError(f"{name}={fn!r}: expected a callable or None")
    return _check_prices(prices, price_overrides)


def _check_prices(prices: Any, overrides: Any) -> PriceBook | None:
    if prices is None and overrides is None:
        return None  # the shipped tables, loaded on first need: nothing to import now
    from finops.pricing import PriceBook  # pydantic: only when prices are configured

    if isinstance(prices, PriceBook):
        if overrides is not None:
            raise ConfigError(
                "prices= is a PriceBook and price_overrides= is set: load the overrides into "
                "the book (PriceBook.load(overrides=...)) or pass a tables directory"
            )
        return prices
    if prices is None and overrides is None:
        return None
    if prices is not None and not isinstance(prices, str | Path):
        raise ConfigError(f"prices={prices!r}: expected a PriceBook or a directory of tables")
    if prices is not None and not Path(prices).is_dir():
        raise ConfigError(f"prices={str(prices)!r} is not a directory of price tables")
    if overrides is not None:
        check_overrides_file(overrides)
    try:
        return PriceBook.load(tables_dir=prices, overrides=overrides)
    except PriceFileError as exc:
        what = "price_overrides" if overrides is not None else "prices"
        raise ConfigError(f"{what}: {exc}") from None


def check_overrides_file(overrides: Any, *, where: str = "") -> None:
    """``price_overrides`` must be a mapping or a file that exists and parses (JSON/TOML)."""
    if isinstance(overrides, Mapping):
        return
    if not isinstance(overrides, str | Path) or not str(overrides).strip():
        raise ConfigError(
            f"{where}price_overrides={overrides!r}: expected a mapping or the path of a "
            "JSON/TOML file"
        )
    path = Path(overrides)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{where}price_overrides file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}price_overrides file {path} cannot be read: {exc}") from None
    import json
    import tomllib

    try:
        if path.suffix.lower() == ".toml":
            tomllib.loads(text)
        else:
            json.loads(text)
    except ValueError as exc:  # TOMLDecodeError and JSONDecodeError are ValueErrors
        kind = "TOML" if path.suffix.lower() == ".toml" else "JSON"
        raise ConfigError(
            f"{where}price_overrides file {path} is not valid {kind} ({exc}); fix it "
            "(see docs/pricing.md)"
        ) from None


def _check_dir_path(path: Path, what: str, *, where: str = "") -> None:
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{where}{what}={str(path)!r} exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"{where}{what}={str(path)!r} cannot be created: {exc.strerror or exc}"
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"{where}{what}={str(path)!r} is not writable by this process")


def _check_file_path(path: Path, what: str, *, where: str = "") -> None:
    if path.is_dir():
        raise ConfigError(
            f"{where}{what}={str(path)!r} is a directory: give a file path, e.g. {path / 'finops.duckdb'}"
        )
    _check_dir_path(path.parent if str(path.parent) else Path("."), f"{what} directory", where=where)
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise ConfigError(f"{where}{what}={str(path)!r} exists but is not readable and writable")


def check_budget_store(url: Any, *, where: str = "") -> None:
    """A ``budget_store`` URL must be well formed even when no budget uses it yet."""
    hint = "use 'memory', 'sqlite:///budgets.db' or 'redis://127.0.0.1:6379/0'"
    if not isinstance(url, str):
        raise ConfigError(f"{where}budget_store={url!r}: expected a URL string; {hint}")
    if url in ("memory", "memory://", ""):
        return
    if url.startswith("sqlite:"):
        path = url[len("sqlite://") :] if url.startswith("sqlite://") else ""
        if not path.startswith("/") or path == "/" or not path[1:].strip():
            raise ConfigError(
                f"{where}budget_store {url!r}: write sqlite:///relative/path.db or "
                "sqlite:////absolute/path.db"
            )
        _check_file_path(Path(path[1:]), "budget_store")
        return
    if url.startswith(("redis://", "rediss://")):
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ConfigError(f"{where}budget_store {url!r} is malformed: {exc}; {hint}") from None
        if not parts.hostname:
            raise ConfigError(f"{where}budget_store {url!r} names no host; {hint}")
        db = parts.path.strip("/")
        if db and not db.isdigit():
            raise ConfigError(
                f"{where}budget_store {url!r}: the database must be a number (…:6379/0), got {db!r}"
            )
        del port
        return
    if url.startswith("unix://"):
        if not url[len("unix://") :].strip():
            raise ConfigError(f"{where}budget_store {url!r} names no socket path; {hint}")
        return
    scheme = url.partition(":")[0]
    raise ConfigError(
        f"{where}budget_store {url!r} is not supported"
        f"{did_you_mean(scheme, ('memory', 'sqlite', 'redis', 'rediss', 'unix'))}; {hint}"
    )
