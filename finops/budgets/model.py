"""``Budget``: one spending limit (scope × period × unit × limit × action), and TOML loading."""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping, Sequence
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from finops.errors import ConfigError

__all__ = ["NANO", "Budget", "load_budgets", "usd_to_units"]

#: USD amounts are kept by every store as integer nano-dollars (1e-9 USD): exact and
#: atomic with integer arithmetic (SQLite INTEGER, Redis HINCRBY), never float.
NANO = Decimal(1_000_000_000)

Unit = Literal["usd", "tokens"]
Period = Literal["hour", "day", "week", "month", "total"]
Action = Literal["raise", "warn", "downgrade"]
Failure = Literal["fail_closed", "fail_open"]

_FORBIDDEN_KEY_CHARS = set("=&|")


def usd_to_units(amount: Decimal) -> int:
    """Nano-dollars, rounded towards +inf so a reservation never under-holds."""
    return math.ceil(amount * NANO)


def _escape(value: str) -> str:
    # scope_key is "key=value|key=value"; keep it unambiguous for odd tag values.
    if "%" in value or "|" in value:
        return value.replace("%", "%25").replace("|", "%7C")
    return value


class Budget(BaseModel):
    """A spending limit over a tag scope and a calendar period.

    ``scope`` maps tag names to required values; ``"*"`` means one counter per distinct
    value of that tag (a call without the tag does not match); ``{}`` is global. Several
    keys must all match. ``limit`` is USD (``unit="usd"``, Decimal) or a whole number of
    tokens (``unit="tokens"``). ``action`` is what happens to a call the budget cannot
    hold: ``raise`` :class:`finops.BudgetExceeded` (nothing is sent), ``warn`` (let it
    through, call ``on_warn``, emit :class:`finops.BudgetWarning`, flag the ledger row) or
    ``downgrade`` (send it to ``downgrade_to`` instead). ``on_unavailable`` says what to do
    when the budget store cannot be reached: ``fail_closed`` (refuse; default for
    ``raise``) or ``fail_open`` (let the call through, flagged; default otherwise).

    Invalid values raise :class:`finops.ConfigError`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = ""
    scope: dict[str, str] = Field(default_factory=dict)
    limit: Decimal
    unit: Unit = "usd"
    period: Period
    tz: str = "UTC"
    action: Action = "raise"
    downgrade_to: str | None = None
    on_unavailable: Failure | None = None
    reservation_ttl_s: float = 600.0

    _zone: ZoneInfo = PrivateAttr()
    _limit_units: int = PrivateAttr()
    _fixed: tuple[tuple[str, str], ...] = PrivateAttr()
    _wild: tuple[str, ...] = PrivateAttr()

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigError(_describe(exc, data)) from None

    # -- validation -------------------------------------------------------------------
    @field_validator("limit", mode="before")
    @classmethod
    def _parse_limit(cls, value: Any) -> Decimal:
        if isinstance(value, bool) or value is None:
            raise ValueError(f"limit must be a number or a numeric string, got {value!r}")
        try:
            # str() of a float gives its shortest repr (TOML `limit = 50.5` -> 50.5).
            amount = Decimal(str(value).replace("_", "").strip().lstrip("$"))
        except InvalidOperation:
            raise ValueError(f'limit {value!r} is not a number (write e.g. "50.00")') from None
        if not amount.is_finite() or amount < 0:
            raise ValueError(f"limit must be a finite amount >= 0, got {value!r}")
        return amount

    @field_validator("scope", mode="before")
    @classmethod
    def _parse_scope(cls, value: Any) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ValueError(
                f'scope must be a table of tag = value (e.g. {{team = "search"}}), got {value!r}'
            )
        out: dict[str, str] = {}
        for key, tag_value in value.items():
            if not isinstance(key, str) or not key or _FORBIDDEN_KEY_CHARS & set(key):
                raise ValueError(f"scope tag name {key!r} must be a non-empty name without = & |")
            if tag_value is None or (isinstance(tag_value, str) and not tag_value):
                raise ValueError(f'scope tag {key!r} needs a value (or "*" for each value)')
            out[key] = str(tag_value)
        return out

    @field_validator("tz")
    @classmethod
    def _check_tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"tz {value!r} is not a known IANA time zone "
                "(use e.g. 'UTC', 'Europe/Paris', 'America/New_York')"
            ) from None
        return value

    @field_validator("reservation_ttl_s")
    @classmethod
    def _check_ttl(cls, value: float) -> float:
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"reservation_ttl_s must be > 0 seconds, got {value!r}")
        return value

    @model_validator(mode="after")
    def _complete(self) -> Budget:
        if self.unit == "tokens" and self.limit != self.limit.to_integral_value():
            raise ValueError(f"a tokens budget needs a whole-number limit, got {self.limit}")
        if self.action == "downgrade" and not self.downgrade_to:
            raise ValueError('action="downgrade" needs downgrade_to="<cheaper model>"')
        if self.action != "downgrade" and self.downgrade_to:
            raise ValueError(
                f'downgrade_to is only used with action="downgrade", not {self.action!r}'
            )
        # Frozen model: fill derived defaults once, here, before anyone can see the object.
        if not self.name:
            object.__setattr__(self, "name", self.default_name())
        elif "|" in self.name or "\n" in self.name:
            raise ValueError(f"budget name {self.name!r} must not contain '|' or a newline")
        if self.on_unavailable is None:
            object.__setattr__(
                self, "on_unavailable", "fail_closed" if self.action == "raise" else "fail_open"
            )
        self._zone = ZoneInfo(self.tz)
        self._limit_units = (
            int(self.limit)
            if self.unit == "tokens"
            else int((self.limit * NANO).to_integral_value(rounding=ROUND_FLOOR))
        )
        self._fixed = tuple(sorted((k, v) for k, v in self.scope.items() if v != "*"))
        self._wild = tuple(sorted(k for k, v in self.scope.items() if v == "*"))
        return self

    # -- helpers used by the manager -------------------------------------------------
    def default_name(self) -> str:
        """``team=search/day``, ``agent=*/hour/tokens``, ``global/month``."""
        scope = "&".join(f"{k}={v}" for k, v in sorted(self.scope.items())) or "global"
        return f"{scope}/{self.period}" + ("/tokens" if self.unit == "tokens" else "")

    @property
    def zone(self) -> ZoneInfo:
        """The budget's time zone."""
        return self._zone

    @property
    def limit_units(self) -> int:
        """The limit in store units (nano-dollars, rounded down; or tokens)."""
        return self._limit_units

    def match(self, tags: Mapping[str, str]) -> str | None:
        """The counter (``scope_key``) a call with these tags goes to, or None.

        ``scope_key`` is ``""`` without ``"*"`` keys, else ``"agent=a1|user=u7"`` (the
        wildcard keys, sorted; ``%`` and ``|`` in values escaped as ``%25`` / ``%7C``).
        """
        for key, value in self._fixed:
            if tags.get(key) != value:
                return None
        if not self._wild:
            return ""
        parts = []
        for key in self._wild:
            tag = tags.get(key)
            if not tag:
                return None
            parts.append(f"{key}={_escape(tag)}")
        return "|".join(parts)

    def concrete_scope(self, scope_key: str) -> dict[str, str]:
        """The scope with ``"*"`` replaced by the values of one counter."""
        out = dict(self.scope)
        if scope_key:
            for part in scope_key.split("|"):
                key, _, value = part.partition("=")
                out[key] = value.replace("%7C", "|").replace("%25", "%")
        return out


def _describe(exc: ValidationError, data: Mapping[str, Any]) -> str:
    label = data.get("name") or _guess_name(data)
    problems = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "budget"
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "literal_error":
            msg = f"{msg}, got {err['input']!r}"
        elif err["type"] == "missing":
            msg = "is required"
        elif err["type"] == "extra_forbidden":
            import difflib

            close = difflib.get_close_matches(field, list(Budget.model_fields), n=1)
            hint = f"; did you mean `{close[0]}`?" if close else ""
            msg = (
                f"is not a budget setting{hint} (allowed: name, scope, limit, unit, period, "
                "tz, action, downgrade_to, on_unavailable, reservation_ttl_s)"
            )
        problems.append(msg if field == "budget" else f"{field}: {msg}")
    return f"invalid budget {label}: " + "; ".join(problems)


def _guess_name(data: Mapping[str, Any]) -> str:
    scope = data.get("scope") or {}
    if isinstance(scope, Mapping):
        text = "&".join(f"{k}={v}" for k, v in sorted(scope.items(), key=str)) or "global"
    else:
        text = "?"
    return f"'{text}/{data.get('period', '?')}'"


def load_budgets(
    source: Mapping[str, Any] | Sequence[Mapping[str, Any]] | str | Path,
) -> list[Budget]:
    """Budgets from a TOML file path, a parsed TOML document or a list of tables.

    The TOML shape is an array of tables::

        [[budgets]]
        scope = { team = "search" }
        limit = "50.00"
        period = "day"
        tz = "Europe/Paris"

    Errors are :class:`finops.ConfigError` naming the file and the entry (``budgets[1]``).
    """
    where = ""
    data: Any = source
    if isinstance(source, str | Path):
        path = Path(source)
        where = f"{path}: "
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"budget config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{where}not valid TOML: {exc}") from None
    entries = data.get("budgets", []) if isinstance(data, Mapping) else data
    if not isinstance(entries, Sequence) or isinstance(entries, str | bytes):
        raise ConfigError(f"{where}'budgets' must be an array of tables ([[budgets]])")
    budgets: list[Budget] = []
    seen: dict[str, int] = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where}budgets[{i}] must be a table, got {entry!r}")
        try:
            budget = Budget(**dict(entry))
        except ConfigError as exc:
            raise ConfigError(f"{where}budgets[{i}]: {exc}") from None
        if budget.name in seen:
            raise ConfigError(
                f"{where}budgets[{i}] has the same name {budget.name!r} as budgets[{seen[budget.name]}]; "
                'give one of them a distinct name = "..."'
            )
        seen[budget.name] = i
        budgets.append(budget)
    return budgets
