"""The ``route`` step of the call path (DESIGN.md §1: after the cache, before the estimate).

``before`` scores the request and, when the policy says a cheaper target will do, rewrites
``call.kwargs`` (model and translated parameters) so the estimate, the budget reservation
and the request that leaves the process all see the target. In ``shadow`` mode it only
records what it would have done. Every decision lands on the ledger row: ``route_decision``,
``requested_model`` (what the caller asked for), ``route_score``, ``route_policy``,
``route_cpu_us`` (the router's own CPU time).

``on_row`` sets ``counterfactual_cost`` of a routed attempt to the requested model's price for
the same usage, flagged ``counterfactual_estimated`` (the requested model would not have used
exactly the same tokens); ``savings_by_cause`` sums the difference.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, ClassVar

from finops.pipeline.step import Step
from finops.routing.config import Routing
from finops.routing.policy import Decision, Router

if TYPE_CHECKING:
    from finops.ledger.row import LedgerRow
    from finops.pipeline.call import Call, Served
    from finops.pricing.book import PriceBook
    from finops.routing.model import RouterModel

__all__ = ["RouteStep"]

log = logging.getLogger("finops")


class _BookLimits:
    """Context window and max output from the price tables (pricing/*.json)."""

    def __init__(self, pricebook: Callable[[], PriceBook]) -> None:
        self._book = pricebook
        self.context_window = lru_cache(maxsize=256)(self._context_window)
        self.max_output = lru_cache(maxsize=256)(self._max_output)

    def _context_window(self, model: str) -> int | None:
        book = self._book()
        for provider in _LIMIT_PROVIDERS:
            ref = book.resolve(model=model, provider=provider)
            if ref is not None and ref.entry.context_window is not None:
                return ref.entry.context_window
        return None

    def _max_output(self, model: str) -> int | None:
        book = self._book()
        for provider in _LIMIT_PROVIDERS:
            if provider is None or book.resolve(model=model, provider=provider) is not None:
                out = book.max_output_tokens(provider=provider, model=model)
                if out is not None:
                    return out
        return None


#: Where limits are looked up: by the model alone, then Bedrock ids in the ``aws`` table and
#: Gemini models in ``google`` (their ids resolve only there).
_LIMIT_PROVIDERS: tuple[str | None, ...] = (None, "aws", "google")


class RouteStep(Step):
    """Route easy requests to cheaper targets (see :class:`finops.Routing`)."""

    name: ClassVar[str] = "route"
    options: ClassVar[frozenset[str]] = frozenset({"finops_route"})

    def __init__(
        self,
        config: Routing,
        *,
        pricebook: Callable[[], PriceBook] | None = None,
        model: RouterModel | None = None,
    ) -> None:
        if pricebook is None:
            from finops.pricing import PriceBook

            _book: list[PriceBook] = []

            def pricebook() -> PriceBook:
                if not _book:
                    _book.append(PriceBook.default())
                return _book[0]

        self._pricebook = pricebook
        self.router = Router(config=config, model=model, limits=_BookLimits(pricebook))

    def before(self, call: Call) -> Served | None:
        if call.endpoint in ("embeddings", "embed_content"):
            return None
        opt = call.options.get("finops_route", True)
        try:
            decision = self.router.decide(
                endpoint=call.endpoint, kwargs=call.kwargs, tags=call.tags, opt_out=opt is False
            )
        except Exception as exc:  # routing must never break the user's call
            log.warning("finops routing failed, request left unchanged: %r", exc)
            call.row["route_decision"] = f"error:{type(exc).__name__}"
            return None
        if decision is None:
            return None
        self._record(call, decision)
        if decision.routed and decision.kwargs is not None:
            call.kwargs.clear()
            call.kwargs.update(decision.kwargs)
        return None

    @staticmethod
    def _record(call: Call, d: Decision) -> None:
        call.row["route_decision"] = d.summary()
        call.row["requested_model"] = d.requested_model
        call.row["route_score"] = d.score
        call.row["route_policy"] = d.policy
        call.row["route_cpu_us"] = round(d.cpu_us, 1)

    def on_row(self, call: Call, row: LedgerRow) -> None:
        decision = row.route_decision or ""
        if not decision.startswith("route:") or row.cost_total is None or row.status == "blocked":
            return
        requested = row.requested_model
        if not requested:
            return
        try:
            from finops.usage import Usage

            counts: dict[str, int] = {name: getattr(row, name) or 0 for name in _USAGE_FIELDS}
            usage = Usage(**counts)  # type: ignore[arg-type]
            book = self._pricebook()
            # Bedrock and Gemini ids are priced from their wire's own table (the row's)
            table = row.provider if row.provider in ("aws", "google") else None
            if table is not None and book.resolve(model=requested, provider=table) is None:
                table = None
            priced = book.price(provider=table, model=requested, usage=usage, at=row.ts_start)
        except Exception as exc:  # never break recording
            log.warning("finops routing: counterfactual price failed: %r", exc)
            return
        if priced.status == "priced":
            row.counterfactual_cost = priced.total
            row.counterfactual_estimated = True

    def __repr__(self) -> str:
        return f"<RouteStep policy={self.router.policy!r} mode={self.router.config.mode!r}>"


_USAGE_FIELDS: tuple[str, ...] = (
    "input_tokens",
    "cache_read_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "input_audio_tokens",
    "cache_read_audio_tokens",
    "output_tokens",
    "reasoning_tokens",
    "output_audio_tokens",
)

