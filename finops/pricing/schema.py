"""The schema of the files in ``pricing/`` and of user price overrides (pydantic v2).

Prices are decimal *strings* (a JSON float would bring binary rounding): USD per million
tokens for ``*_mtok`` keys, per thousand for ``*_kcount`` keys (see ``pricing/units.json``
for what each key measures). A tiered price is ``{"base": "3", "tiers": [[200000, "6"]]}``:
once the request's *total* input tokens exceed a tier's start, that tier's price applies to
all tokens of that kind (the providers' "cliff" model, as genai-prices bills it).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

__all__ = [
    "BuiltinOverrides",
    "Clause",
    "Correction",
    "CustomModel",
    "GpuHour",
    "Manifest",
    "MaxOutputRule",
    "ModelEntry",
    "PriceSet",
    "ProviderFile",
    "ProviderInfo",
    "TierDiscount",
    "TieredPrice",
    "UnitDef",
    "UnitsFile",
    "UserOverrides",
    "Variant",
    "validate_clause",
]

Clause = dict[str, Any]
_LEAF_CLAUSES = ("equals", "starts_with", "ends_with", "contains", "regex")


def validate_clause(value: Any) -> Clause:
    """Check a genai-prices style match clause: one of equals / starts_with / ends_with /
    contains / regex (a string) or or / and (a non-empty list of clauses)."""
    if not isinstance(value, dict) or len(value) != 1:
        raise ValueError(
            "a match clause is an object with exactly one key: "
            "equals, starts_with, ends_with, contains, regex, or, and"
        )
    [(key, arg)] = value.items()
    if key in _LEAF_CLAUSES:
        if not isinstance(arg, str):
            raise ValueError(f"match clause {key!r} needs a string, got {arg!r}")
    elif key in ("or", "and"):
        if not isinstance(arg, list) or not arg:
            raise ValueError(f"match clause {key!r} needs a non-empty list of clauses")
        for sub in arg:
            validate_clause(sub)
    else:
        raise ValueError(f"unknown match clause {key!r}")
    return value


def _decimal_text(value: Any) -> Any:
    # A float has already lost the exact price (0.1 is not 1/10 in binary): refuse it.
    if isinstance(value, (float, bool)):
        raise ValueError(f'write prices as decimal strings (e.g. "{value}"), not floats')
    return value


def _check_price(value: Decimal) -> Decimal:
    if not value.is_finite() or value < 0:
        raise ValueError(f"a price must be a finite, non-negative decimal, got {value}")
    return value


class TieredPrice(BaseModel):
    """A base price and cliff tiers keyed by total input tokens."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    base: Decimal
    tiers: list[tuple[int, Decimal]]

    @field_validator("base", mode="before")
    @classmethod
    def _base_text(cls, value: Any) -> Any:
        return _decimal_text(value)

    @model_validator(mode="after")
    def _valid(self) -> TieredPrice:
        _check_price(self.base)
        previous = -1
        for start, price in self.tiers:
            _check_price(price)
            if start < 0 or start < previous:
                raise ValueError("tier starts must be non-negative and ascending")
            previous = start
        return self


PriceValue = Decimal | TieredPrice


def _check_prices(value: dict[str, PriceValue]) -> dict[str, PriceValue]:
    for price in value.values():
        _check_price(price.base if isinstance(price, TieredPrice) else price)
    return value


def _prices_before(value: Any) -> Any:
    if isinstance(value, dict):
        for v in value.values():
            _decimal_text(v)
    return value


Prices = Annotated[
    dict[str, PriceValue], BeforeValidator(_prices_before), AfterValidator(_check_prices)
]
ClauseT = Annotated[Clause, AfterValidator(validate_clause)]


class Constraint(BaseModel):
    """When a price set applies: from a UTC start date, or in a daily UTC time window."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    start_date: date | None = None
    start_time: time | None = None
    end_time: time | None = None

    @field_validator("start_time", "end_time")
    @classmethod
    def _utc(cls, value: time | None) -> time | None:
        # Windows are compared with the request's UTC time of day: store them as naive UTC.
        if value is None or value.tzinfo is None:
            return value
        return datetime.combine(date(1970, 1, 1), value).astimezone(UTC).time()

    @model_validator(mode="after")
    def _one_kind(self) -> Constraint:
        window = self.start_time is not None and self.end_time is not None
        if (self.start_date is not None) == window or (
            (self.start_time is None) != (self.end_time is None)
        ):
            raise ValueError("a constraint is either start_date, or start_time and end_time")
        return self


class PriceSet(BaseModel):
    """One set of prices, active from ``constraint`` (None: always)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    constraint: Constraint | None = None
    prices: Prices


class Variant(BaseModel):
    """Partial prices used when the request context matches ``when`` (batch, flex, priority)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    when: dict[str, str] = Field(min_length=1)
    constraint: Constraint | None = None
    prices: Prices


class ModelEntry(BaseModel):
    """A model: its id, matching rule, limits and prices over time."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str = Field(min_length=1)
    name: str | None = None
    match: ClauseT
    context_window: int | None = Field(default=None, ge=0)
    max_output_tokens: int | None = Field(default=None, ge=0)
    deprecated: bool = False
    prices: list[PriceSet] = Field(min_length=1)
    variants: list[Variant] = []


class ProviderInfo(BaseModel):
    """Who the provider is and how to recognize its API and its models."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str = Field(min_length=1)
    name: str
    api_pattern: str | None = None
    model_match: ClauseT | None = None
    provider_match: ClauseT | None = None
    fallback_model_providers: list[str] = []
    pricing_urls: list[str] = []


class ProviderFile(BaseModel):
    """One ``pricing/<provider>.json`` file."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)
    schema_version: Literal[1] = Field(default=1, alias="schema")
    provider: ProviderInfo
    models: list[ModelEntry]


class Manifest(BaseModel):
    """``pricing/manifest.json``: the table version and the providers in guessing order."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)
    schema_version: Literal[1] = Field(default=1, alias="schema")
    source: str
    generated: date
    content_sha256: str
    version: str = Field(min_length=1)
    providers: list[str]
    provider_info: dict[str, ProviderInfo]
    files: dict[str, str] = {}

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        missing = [p for p in self.providers if p not in self.provider_info]
        if missing:
            raise ValueError(f"providers {missing} have no provider_info")
        return self


class UnitDef(BaseModel):
    """What a price key measures (genai-prices' unit registry)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    price_key: str
    per: int = Field(gt=0)
    dimensions: dict[str, str]


class UnitsFile(BaseModel):
    """``pricing/units.json``."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)
    schema_version: Literal[1] = Field(default=1, alias="schema")
    units: dict[str, UnitDef]


class _Sourced(BaseModel):
    """Every reviewed override names where its number comes from and when it was checked."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    source: str = Field(min_length=1)
    date: date
    note: str | None = None


class MaxOutputRule(_Sourced):
    """Maximum output tokens for models matching ``match`` (used for worst-case estimates)."""

    match: ClauseT
    value: int = Field(ge=0)


class Correction(_Sourced):
    """Prices merged into every price set of one model, where the source table is wrong."""

    provider: str
    model: str
    prices: Prices


class TierDiscount(_Sourced):
    """A published percentage off token prices for a request context (e.g. batch = 50% off),
    used when the model's table has no variant of its own for that context."""

    when: dict[str, str] = Field(min_length=1)
    provider: str
    match: ClauseT | None = None
    percent: Decimal = Field(gt=0, le=100)


class BuiltinOverrides(BaseModel):
    """``pricing/overrides.json``: finops' reviewed corrections on top of genai-prices."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)
    schema_version: Literal[1] = Field(default=1, alias="schema")
    version: str = Field(min_length=1)
    comment: str | None = None
    corrections: list[Correction] = []
    tier_discounts: list[TierDiscount] = []
    max_output_tokens: list[MaxOutputRule] = []


class GpuHour(BaseModel):
    """A self-hosted model priced from what its GPUs cost per hour and its throughput.

    price per million tokens = usd_per_gpu_hour × gpus / 3600 / tokens_per_second × 1,000,000,
    computed separately for input (prefill) and output (decode) when both rates are given.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    usd_per_gpu_hour: Decimal = Field(gt=0)
    gpus: int = Field(default=1, gt=0)
    tokens_per_second: Decimal | None = Field(default=None, gt=0)
    input_tokens_per_second: Decimal | None = Field(default=None, gt=0)
    output_tokens_per_second: Decimal | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _rates(self) -> GpuHour:
        if self.tokens_per_second is None and (
            self.input_tokens_per_second is None or self.output_tokens_per_second is None
        ):
            raise ValueError(
                "give tokens_per_second, or both input_tokens_per_second and "
                "output_tokens_per_second"
            )
        return self

    def prices(self) -> dict[str, Decimal]:
        """USD per million input and output tokens."""
        hourly = self.usd_per_gpu_hour * self.gpus
        tps_in = self.input_tokens_per_second or self.tokens_per_second
        tps_out = self.output_tokens_per_second or self.tokens_per_second
        assert tps_in is not None and tps_out is not None  # checked by _rates
        return {
            "input_mtok": hourly / 3600 / tps_in * 1_000_000,
            "output_mtok": hourly / 3600 / tps_out * 1_000_000,
        }


class CustomModel(BaseModel):
    """A model the user prices: explicit per-MTok prices and/or GPU-hour economics."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    provider: str = "custom"
    id: str = Field(min_length=1)
    match: ClauseT | None = None
    prices: Prices = {}
    gpu_hour: GpuHour | None = None
    context_window: int | None = Field(default=None, ge=0)
    max_output_tokens: int | None = Field(default=None, ge=0)
    source: str | None = None

    @model_validator(mode="after")
    def _priced(self) -> CustomModel:
        if not self.prices and self.gpu_hour is None:
            raise ValueError(f"custom model {self.id!r} needs prices or gpu_hour")
        return self


class UserOverrides(BaseModel):
    """What ``PriceBook.load(overrides=...)`` accepts (a mapping, or a JSON / TOML file)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    discounts: dict[str, str | int] = {}
    models: list[CustomModel] = []
    max_output_tokens: list[MaxOutputRule] = []

    @field_validator("discounts")
    @classmethod
    def _percentages(cls, value: dict[str, str | int]) -> dict[str, str | int]:
        for scope, pct in value.items():
            parse_percent(pct, scope)
        return value


def parse_percent(text: str | int | Decimal, scope: str = "") -> Decimal:
    """``"10%"`` / ``"10"`` / ``10`` → ``Decimal("0.10")``; 0–100% only."""
    try:
        value = Decimal(str(text).strip().rstrip("%").strip())
    except ArithmeticError:
        raise ValueError(f'discount {scope!r}: {text!r} is not a percentage like "10%"') from None
    if not value.is_finite() or not 0 <= value <= 100:
        raise ValueError(
            f"discount {scope!r}: a discount must be between 0% and 100%, got {text!r}"
        )
    return value / 100
