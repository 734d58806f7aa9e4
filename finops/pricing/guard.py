"""Step: refuse calls to models without a price, under ``unknown_model="raise"``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from finops.errors import UnknownModelError
from finops.pipeline.call import Call, Served
from finops.pipeline.step import Step
from finops.providers.hosts import has_price

if TYPE_CHECKING:
    from finops.pricing.book import PriceBook

__all__ = ["UnknownModelGuard"]


class UnknownModelGuard(Step):
    """Raise :class:`~finops.errors.UnknownModelError` before sending a call no table prices.

    Only in the pipeline when the policy is ``raise``; the other policies (``zero_flagged``,
    ``fallback:<model>``) act when the response is priced.
    """

    name = "unknown_model_guard"

    def __init__(self, pricebook: Callable[[], PriceBook]) -> None:
        self._pricebook = pricebook

    def before(self, call: Call) -> Served | None:
        """Refuse the call if its model has no price."""
        model = call.kwargs.get("model")
        if not isinstance(model, str):
            return None
        if not has_price(self._pricebook(), call.host, model, call.price_provider):
            raise UnknownModelError(
                f"finops has no price for model {model!r}, and unknown_model='raise': the "
                f"call was not sent. Add the model to price_overrides, or use "
                f"unknown_model='zero_flagged' or 'fallback:<model>'.",
                provider=call.price_provider or call.provider,
                model=model,
            )
        return None
