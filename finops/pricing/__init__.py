"""Prices: versioned tables in ``pricing/`` → a Decimal cost for a normalized ``Usage``.

The tables are generated from genai-prices by ``scripts/sync_prices.py`` (genai-prices is
never imported at run time) and corrected by finops' reviewed ``pricing/overrides.json``;
users add negotiated discounts, custom and self-hosted models with ``overrides=`` (see
docs/pricing.md)::

    book = PriceBook.default()
    cost = book.price(provider="anthropic", model="claude-sonnet-4-5-20250929",
                      usage=Usage(input_tokens=1200, output_tokens=300), at=now)
    cost.total, cost.price_version, cost.status
"""

from __future__ import annotations

from finops.pricing.book import ModelRef, PriceBook, PricedCost, UnitPrices, default_tables_dir

__all__ = ["ModelRef", "PriceBook", "PricedCost", "UnitPrices", "default_tables_dir"]
