"""``finops.FinOps``: the one configured object (ledger, prices, policies) and ``wrap``.

``FinOps`` composes; it decides nothing per call. At construction it builds the ledger, the
meter (the response side) and the ordered list of call-path steps from its configuration
(:mod:`finops.pipeline.compose`); ``wrap`` hands both to the facade.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from finops.config import check_settings
from finops.errors import ConfigError
from finops.intercept.facade import describe_client, wrap_client
from finops.metering import Meter
from finops.metering.meter import utc_now
from finops.pipeline import Pipeline, StepConfig, StepEnv, build_steps
from finops.tokens.step import check_mode

if TYPE_CHECKING:
    from finops.budgets import Budget, BudgetManager, BudgetStatus
    from finops.ledger import Ledger
    from finops.pipeline import Step
    from finops.pricing import PriceBook
    from finops.routing.config import Routing
    from finops.routing.relay import Clients
    from finops.tokens import Estimate

__all__ = ["FinOps"]

log = logging.getLogger("finops")

C = TypeVar("C")


def _check_unknown_policy(policy: str) -> str:
    if policy in ("raise", "zero_flagged") or (
        policy.startswith("fallback:") and len(policy) > len("fallback:")
    ):
        return policy
    raise ConfigError(
        f"unknown_model={policy!r} is not a policy: use 'raise', 'zero_flagged' or "
        f"'fallback:<model>' (for example 'fallback:gpt-4o')"
    )


class FinOps:
    """Meters, prices and records every call made through the clients it wraps.

    Args:
        ledger: path of the DuckDB ledger file (created if missing), or a
            :class:`finops.Ledger` to share.
        spool_dir: where the crash-safe spool lives (default: next to the ledger file).
        prices: a :class:`finops.PriceBook`, or a directory of price tables; default: the
            tables shipped with finops.
        price_overrides: negotiated discounts, custom and self-hosted models (a mapping or
            the path of a JSON/TOML overrides file), see ``docs/pricing.md``.
        unknown_model: what to do with a model that has no price: ``"zero_flagged"``
            (default: record zero cost, flag the row, warn once), ``"raise"`` (refuse the call
            before it is sent, :class:`finops.UnknownModelError`) or ``"fallback:<model>"``.
        store_content: store prompt and response text on ledger rows (default False: only a
            SHA-256 of the request body is stored).
        budgets: :class:`finops.Budget` limits, reserved before each call (docs/budgets.md).
        budget_store: ``"memory"``, ``"sqlite:///path"`` or ``"redis://host:port/db"``.
        on_budget_warn: called with a :class:`finops.budgets.BudgetEvent` when a ``warn``
            budget is crossed.
        estimate: pre-call token estimates: ``"auto"`` (default), ``"exact"``, ``"bound"``
            or ``"off"`` (estimate only when a budget or a cost cap needs it).
        max_call_cost: default per-call cap in USD (e.g. ``"0.50"``): a call whose worst-case
            cost is above it is refused before it is sent (:class:`finops.CallCostExceeded`).
            Per call: ``finops_max_cost="0.05"``.
        steps: your own :class:`finops.Step` objects (a redaction, a guard, a custom
            answer source). They run after the built-in steps that rewrite the request
            (cache lookup, routing) and before the estimate and budget reservation, so what
            they change is what gets estimated and budgeted (docs/architecture.md).
        cache: a :class:`finops.Cache` to serve repeated (and, opt-in, equivalent) requests
            from a cache (docs/cache.md); None (default): no caching.
        providers: host → price provider rules for ``base_url`` hosts finops does not know
            (``{"my-gateway.internal": "groq", "localhost:8000": "self_hosted"}``; ``"*"``
            sets the policy for other unknown hosts), see ``docs/providers.md``.
        clock: returns the current time (timezone-aware); injectable for tests.
    """

    def __init__(
        self,
        *,
        ledger: str | Path | Ledger = "finops.duckdb",
        spool_dir: str | Path | None = None,
        prices: PriceBook | str | Path | None = None,
        price_overrides: str | Path | Mapping[str, Any] | None = None,
        unknown_model: str = "zero_flagged",
        store_content: bool = False,
        budgets: Iterable[Budget] = (),
        budget_store: str = "memory",
        on_budget_warn: Callable[..., None] | None = None,
        estimate: str = "auto",
        max_call_cost: str | int | Decimal | None = None,
        steps: Iterable[Step] = (),
        cache: Any = None,
        providers: Mapping[str, Any] | None = None,
        routing: Routing | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        from finops.budgets.call_cap import parse_cap
        from finops.ledger import Ledger

        self.estimate_mode = check_mode(estimate)
        self.unknown_model = _check_unknown_policy(unknown_model)
        self.store_content = bool(store_content)
        self.clock = clock or utc_now
        cap = None if max_call_cost is None else parse_cap(max_call_cost, where="max_call_cost")
        self._prices_arg = prices
        self._overrides = price_overrides
        self._pricebook: PriceBook | None = check_settings(  # ConfigError now, not at a call
            ledger=ledger, spool_dir=spool_dir, prices=prices, price_overrides=price_overrides,
            store_content=store_content, budgets=budgets, budget_store=budget_store,
            on_budget_warn=on_budget_warn, clock=clock,
        )
        self._pricebook_lock = threading.Lock()
        self._hosts = _host_map(providers, self.pricebook) if providers is not None else None
        if isinstance(ledger, Ledger):
            self.ledger = ledger
            self._owns_ledger = False
        else:
            self.ledger = Ledger(ledger, spool_dir=spool_dir)
            self._owns_ledger = True

        self._budgets: BudgetManager | None = None
        budget_list = list(budgets)
        if budget_list:
            from finops.budgets import BudgetManager
            from finops.budgets.step import ledger_seed

            self._budgets = BudgetManager(
                budget_list,
                store=budget_store,
                clock=self.clock,
                on_warn=on_budget_warn,
                seed=ledger_seed(self.ledger),
            )
        # wrapped clients, for cross-provider routes (the latest one per provider and flavour
        # is held until this FinOps is closed or another client of that provider is wrapped)
        self._clients: Clients | None = None
        if routing is not None:
            from finops.routing.relay import Clients

            self._clients = Clients()
        env = StepEnv(
            pricebook=self.pricebook, ledger=self.ledger, clock=self.clock, clients=self._clients
        )
        config = StepConfig(
            unknown_model=self.unknown_model,
            estimate=self.estimate_mode,
            budgets=self._budgets,
            max_call_cost=cap,
            extra=tuple(steps),
            cache=cache,
            routing=routing,
        )
        self._pipeline = Pipeline(build_steps(config, env), store_content=self.store_content)
        self._meter = Meter(
            sink=self.ledger,
            pricebook=self.pricebook,
            unknown_model=self.unknown_model,
            store_content=self.store_content,
            clock=self.clock,
            on_row=self._pipeline.on_row,
            on_call_end=self._pipeline.after,
        )
        self._meter.hosts = self._hosts
        if not self._pipeline.after_hooks and hasattr(self.ledger, "add_flush_hook"):
            # No step needs the priced row on the caller's thread: build rows off it.
            from finops.metering.deferred import PENDING_DIR

            self._meter.defer(self.ledger.spool_dir / PENDING_DIR)
            self.ledger.add_flush_hook(self._meter.drain)
        self._closed = False
        if self._budgets is not None or cap is not None:
            # Every call is estimated before it is sent: load the tokenizer now, off the
            # caller's thread, rather than inside the first call. Otherwise nothing needs it
            # before a response is in, and the estimate step starts that load when the first
            # call is sent (it then overlaps with the network wait, not the process start).
            from finops.tokens.encodings import warm

            warm("o200k_base")

    @property
    def steps(self) -> list[str]:
        """Names of the call-path steps this FinOps runs, in order (docs/architecture.md)."""
        return [step.name for step in self._pipeline.steps]

    @classmethod
    def from_config(cls, path: str | Path, **overrides: Any) -> FinOps:
        """Build a FinOps from a TOML file (``[finops]`` settings and ``[[budgets]]``).

        Keyword arguments override values from the file. See README "Configuration".
        """
        from finops.config import load_config

        return cls(**load_config(path, overrides))

    # -- budgets -------------------------------------------------------------------------
    def budget_status(self) -> list[BudgetStatus]:
        """Limit, spent, reserved, remaining and burn rate of every budget (current period)."""
        return [] if self._budgets is None else self._budgets.status()

    # -- estimates -----------------------------------------------------------------------
    def estimate(
        self,
        request: Mapping[str, Any],
        *,
        provider: str = "openai",
        endpoint: str = "chat.completions",
    ) -> Estimate:
        """Worst-case tokens and cost of a request before it is sent (see ``finops.tokens``).

        ``request`` is the keyword arguments you would pass to the SDK method.
        """
        from finops.tokens import estimate_request

        return estimate_request(
            provider=provider,
            endpoint=endpoint,
            body=request,
            pricebook=self.pricebook(),
            mode="exact",
        )

    # -- configuration -------------------------------------------------------------------
    def pricebook(self) -> PriceBook:
        """The price tables in use (loaded on first need)."""
        book = self._pricebook
        if book is not None:
            return book
        with self._pricebook_lock:
            if self._pricebook is None:
                from finops.pricing import PriceBook

                arg = self._prices_arg
                if isinstance(arg, PriceBook):
                    self._pricebook = arg
                elif arg is None and self._overrides is None:
                    self._pricebook = PriceBook.default()
                else:
                    self._pricebook = PriceBook.load(tables_dir=arg, overrides=self._overrides)
            return self._pricebook

    # -- wrapping ------------------------------------------------------------------------
    def wrap(self, client: C) -> C:
        """Return a metered copy of ``client`` (``openai.OpenAI``, ``openai.AsyncOpenAI``,
        ``anthropic.Anthropic``, ``anthropic.AsyncAnthropic``, or an OpenAI-compatible client
        made with ``base_url=``). The original client is not modified.
        """
        if self._closed:
            raise ConfigError("this FinOps is closed; create a new one to wrap more clients")
        wrapped = wrap_client(client, meter=self._meter, pipeline=self._pipeline, hosts=self._hosts)
        if self._clients is not None:  # a route may name this client's provider
            found = describe_client(wrapped, self._hosts)
            if found is not None:
                label, wire, flavours = found
                self._clients.add(wrapped, label=label, wire=wire, flavours=flavours)
        return wrapped

    # -- lifecycle -----------------------------------------------------------------------
    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until every row recorded so far is in DuckDB. False if it could not be
        written yet (e.g. the file is locked by another process; rows stay in the spool)."""
        return bool(self.ledger.flush(timeout_s=timeout_s))

    def close(self) -> None:
        """Flush and close the ledger (if this object opened it). Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._meter.close()
        if self._owns_ledger:
            self.ledger.close()

    def __enter__(self) -> FinOps:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _host_map(providers: Mapping[str, Any], book: Callable[[], PriceBook]) -> Any:
    from finops.providers.hosts import HostMap, known_price_providers

    return HostMap(providers, known_providers=known_price_providers(book()))
