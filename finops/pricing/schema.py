"""The schema of the price tables in ``pricing/`` (pydantic v2; validated on load).

Prices are decimal strings: per million tokens for ``*_mtok`` keys, per thousand for
``*_kcount`` keys. A tiered price is ``{"base": "3", "tiers": [[200000, "6"]]}``: once the
request's *total* input tokens exceed a tier's start, that tier's price applies to all tokens
of that kind (the providers' "cliff" model).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "Clause",
    "ModelEntry",
    "PriceSet",
    "ProviderFile",
    "ProviderInfo",
    "TieredPrice",
    "Variant",
]


class TieredPrice(BaseModel):
    """A base price and cliff tiers keyed by total input tokens."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    base: Decimal
    tiers: list[tuple[int, Decimal]]


PriceValue = Decimal | TieredPrice
Clause = dict[str, Any]


class PriceSet(BaseModel):
    """One set of prices, active from ``constraint`` (a start date or a daily time window)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    constraint: dict[str, str] | None = None
    prices: dict[str, PriceValue]

    @field_validator("prices")
    @classmethod
    def _non_negative(cls, value: dict[str, PriceValue]) -> dict[str, PriceValue]:
        for key, price in value.items():
            base = price.base if isinstance(price, TieredPrice) else price
            if base < 0:
                raise ValueError(f"price {key} is negative ({base})")
        return value


class Variant(BaseModel):
    """Partial prices used when the request context matches ``when`` (batch, flex, priority)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    when: dict[str, str]
    constraint: dict[str, str] | None = None
    prices: dict[str, PriceValue]


class ModelEntry(BaseModel):
    """A model: its id, matching rule, context window and prices over time."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str
    name: str | None = None
    match: Clause
    context_window: int | None = None
    max_output_tokens: int | None = None
    deprecated: bool = False
    prices: list[PriceSet]
    variants: list[Variant] = []

    @field_validator("prices")
    @classmethod
    def _some_prices(cls, value: list[PriceSet]) -> list[PriceSet]:
        if not value:
            raise ValueError("a model needs at least one price set")
        return value


class ProviderInfo(BaseModel):
    """Who the provider is and how to recognize its API and its models."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str
    name: str
    api_pattern: str | None = None
    model_match: Clause | None = None
    provider_match: Clause | None = None
    fallback_model_providers: list[str] = []
    pricing_urls: list[str] = []


class ProviderFile(BaseModel):
    """One ``pricing/<provider>.json`` file."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)
    schema_version: int = Field(default=1, alias="schema")
    provider: ProviderInfo
    models: list[ModelEntry]
