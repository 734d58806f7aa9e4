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

A target of another provider (``"anthropic:claude-haiku-4-5"`` on an OpenAI client) is a
cross-provider route (:mod:`finops.routing.cross`, :mod:`finops.routing.relay`): ``before``
translates the request for the target's wrapped client and ends the caller's chain with a
:class:`~finops.routing.relay.Relay`, which the caller's facade runs. The target's call runs
its own pipeline — this step, seeing the relayed fields, records them instead of deciding
again — and writes the call's one row (the caller's own attempt is silent).
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any, ClassVar

from finops.pipeline.step import Step
from finops.routing.config import Routing
from finops.routing.policy import Decision, Router
from finops.routing.relay import RELAYED

if TYPE_CHECKING:
    from finops.ledger.row import LedgerRow
    from finops.pipeline.call import Call, Outcome, Served
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
        clients: Any = None,
    ) -> None:
        self.clients = clients  # finops.routing.relay.Clients (None: no cross-provider routes)
        self._requested_provider: dict[str, str] = {}  # relayed call id -> caller's provider
        self._lock = threading.Lock()
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
        relayed = RELAYED.get()
        if relayed is not None:  # the target side of a cross-provider route: record, not decide
            RELAYED.set(None)  # only this call (not calls it might make) is the relayed one
            call.row.update({k: v for k, v in relayed.items() if not k.startswith("_")})
            provider = relayed.get("_requested_provider")
            if isinstance(provider, str):
                self._remember(call.call_id, provider)
            return None
        if call.endpoint in ("embeddings", "embed_content"):
            return None
        opt = call.options.get("finops_route", True)
        pending: dict[Any, Any] = {}
        own = call.price_provider or call.provider
        try:
            decision = self.router.decide(
                endpoint=call.endpoint,
                kwargs=call.kwargs,
                tags=call.tags,
                opt_out=opt is False,
                own_provider=own,
                cross=self._cross_check(call, pending) if self.clients is not None else None,
                known=self.clients.labels() if self.clients is not None else frozenset(),
            )
        except Exception as exc:  # routing must never break the user's call
            log.warning("finops routing failed, request left unchanged: %r", exc)
            call.row["route_decision"] = f"error:{type(exc).__name__}"
            return None
        if decision is None:
            return None
        if decision.provider is not None:
            relay = pending.get((decision.provider, decision.served_model))
            if relay is not None:
                dropped = tuple(dict.fromkeys(relay["dropped"]))
                changed = tuple(c for c in dict.fromkeys(relay["changed"]) if c not in dropped)
                decision = replace(decision, dropped=dropped, changed=changed)
        self._record(call, decision)
        if decision.routed and decision.provider is not None:
            return self._relay(call, decision, pending)
        if decision.routed and decision.kwargs is not None:
            call.kwargs.clear()
            call.kwargs.update(decision.kwargs)
        return None

    def _remember(self, call_id: str, provider: str) -> None:
        with self._lock:
            self._requested_provider[call_id] = provider
            while len(self._requested_provider) > 10_000:  # calls whose after never ran
                self._requested_provider.pop(next(iter(self._requested_provider)))

    def after(self, call: Call, outcome: Outcome) -> None:
        """Forget a relayed call's caller provider (its rows are all recorded)."""
        if self._requested_provider:
            with self._lock:
                self._requested_provider.pop(call.call_id, None)

    def _cross_check(self, call: Call, pending: dict[Any, Any]) -> Callable[[str, str], str | None]:
        """The policy's test of a cross-provider target: translatable, target wrapped."""

        def check(provider: str, model: str) -> str | None:
            from finops.routing.cross import (
                CALLER_ENDPOINTS,
                CannotTranslate,
                read_request,
                target_kwargs,
            )
            from finops.routing.wires import is_bedrock_id

            if CALLER_ENDPOINTS.get(call.provider) != call.endpoint or (
                call.kind != "call" and call.provider not in ("google", "aws")  # send at once
            ):
                return "cross_provider_caller"  # Responses, InvokeModel, .stream() helpers
            assert self.clients is not None
            found = self.clients.get(provider, is_async=call.is_async)
            if found is None:
                return "target_not_wrapped"
            wire, client, client_async = found
            if wire == "aws" and not is_bedrock_id(model):
                return "not_a_bedrock_model_id"
            try:
                conv = read_request(call.provider, call.endpoint, call.kwargs)
                limits = self.router.limits
                out = limits.max_output(model) if limits is not None else None
                kwargs = target_kwargs(provider, wire, model, conv, max_output=out)
            except CannotTranslate as exc:
                return exc.reason
            for name in _unaccepted(wire, client, client_async, kwargs):
                kwargs.pop(name)  # e.g. sampling parameters a newer Anthropic SDK no longer takes
                conv.dropped.append(name)
            pending[(provider, model)] = {
                "wire": wire,
                "client": client,
                "client_async": client_async,
                "kwargs": kwargs,
                "stream": call.stream,
                "dropped": conv.dropped,
                "changed": conv.changed,
            }
            return None

        return check

    def _relay(self, call: Call, decision: Decision, pending: dict[Any, Any]) -> Served:
        from finops.pipeline.call import Served
        from finops.routing.relay import Relay
        from finops.routing.translate import translate

        assert decision.provider is not None and decision.served_model is not None
        p = pending[(decision.provider, decision.served_model)]
        kwargs = p["kwargs"]
        target_endpoint = {"openai": "chat.completions", "anthropic": "messages"}.get(p["wire"])
        if target_endpoint is not None:  # reasoning-model limits, thinking, effort
            route = next(
                r for r in self.router.config.routes if r.matches(decision.requested_model)
            )
            target = next(
                (t for t in route.targets if t.label(decision.requested_model) == decision.target),
                None,
            )
            tr = translate(
                target_endpoint,
                kwargs,
                model=decision.served_model,
                reasoning_effort=target.reasoning_effort if target else None,
                thinking_off=bool(target and target.thinking == "off"),
            )
            kwargs = tr.kwargs
        own = call.price_provider or call.provider
        fields = {k: call.row[k] for k in _ROUTE_FIELDS if k in call.row}
        fields["route_decision"] = call.row["route_decision"] + f" from={own}"
        fields["_requested_provider"] = own
        call.row["route_decision"] = fields["route_decision"]
        options = {
            k: v for k, v in call.options.items() if k in ("finops_cache", "finops_max_cost")
        }
        call.relay = Relay(
            provider=decision.provider,
            wire=p["wire"],
            client=p["client"],
            client_async=p["client_async"],
            model=decision.served_model,
            kwargs=kwargs,
            caller_wire=call.provider,
            caller_endpoint=call.endpoint,
            stream=p["stream"],
            tags=dict(call.tags),
            fields=fields,
            options=options,
        )
        call.silent = True
        return Served(body=b"")  # a placeholder: the facade serves what the relay returns

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
        crossed = self._requested_provider.get(call.call_id)
        try:
            from finops.usage import Usage

            counts: dict[str, int] = {name: getattr(row, name) or 0 for name in _USAGE_FIELDS}
            usage = Usage(**counts)  # type: ignore[arg-type]
            book = self._pricebook()
            # Bedrock and Gemini ids are priced from their wire's own table (the row's)
            table = row.provider if row.provider in ("aws", "google") else None
            if crossed is not None:  # a cross-provider route: the caller's provider's table
                table = crossed
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


def _unaccepted(wire: str, client: Any, client_async: bool, kwargs: Mapping[str, Any]) -> list[str]:
    """Target keyword arguments the target SDK's method does not take (its signature)."""
    if wire not in ("openai", "anthropic"):
        return []
    from finops.routing.relay import method_of

    try:
        params = inspect.signature(method_of(wire, client, client_async)).parameters
    except (TypeError, ValueError):
        return []
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return []
    return [name for name in kwargs if name not in params]


#: What a relayed call's row takes from the caller's decision.
_ROUTE_FIELDS = ("route_decision", "requested_model", "route_score", "route_policy", "route_cpu_us")

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
