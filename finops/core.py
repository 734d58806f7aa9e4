"""``finops.FinOps``: the one configured object (ledger, prices, policies) and ``wrap``."""

from __future__ import annotations

import json
import logging
import threading
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from finops.context import current_tags
from finops.errors import ConfigError, MeteringWarning, UnknownModelError
from finops.intercept.calls import CallContext
from finops.intercept.facade import with_call_header, wrap_client
from finops.meter import Meter, utc_now
from finops.usage import TOKEN_FIELDS

if TYPE_CHECKING:
    from finops.budgets import Budget, BudgetManager, BudgetStatus
    from finops.ledger import Ledger
    from finops.meter import ClientHook
    from finops.pricing import PriceBook
    from finops.tokens import Estimate

__all__ = ["FinOps"]

log = logging.getLogger("finops")

C = TypeVar("C")

#: Keyword arguments finops takes off an SDK call before passing it on.
TAGS_KWARG = "finops_tags"


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
        providers: Mapping[str, Any] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        from finops.ledger import Ledger

        if estimate not in _ESTIMATE_MODES:
            raise ConfigError(
                f"estimate={estimate!r} is not a mode: use one of {', '.join(_ESTIMATE_MODES)}"
            )
        self.estimate_mode = estimate

        self.unknown_model = _check_unknown_policy(unknown_model)
        self.store_content = bool(store_content)
        self.clock = clock or utc_now
        self._prices_arg = prices
        self._overrides = price_overrides
        self._pricebook: PriceBook | None = None
        self._pricebook_lock = threading.Lock()
        self._hosts = _host_map(providers, self.pricebook) if providers is not None else None
        if isinstance(ledger, Ledger):
            self.ledger = ledger
            self._owns_ledger = False
        else:
            self.ledger = Ledger(ledger, spool_dir=spool_dir)
            self._owns_ledger = True
        self._meter = Meter(
            sink=self.ledger,
            pricebook=self.pricebook,
            unknown_model=self.unknown_model,
            store_content=self.store_content,
            clock=self.clock,
            on_call_end=self._settle,
        )
        self._budgets: BudgetManager | None = None
        budget_list = list(budgets)
        if budget_list:
            from finops.budgets import BudgetManager

            self._budgets = BudgetManager(
                budget_list,
                store=budget_store,
                clock=self.clock,
                on_warn=on_budget_warn,
                seed=self._seed_budget,
            )
        self._closed = False
        if self.estimate_mode != "off":
            # Loading a BPE table takes ~0.4 s: do it now, off the caller's thread, rather
            # than inside the first metered call.
            threading.Thread(target=_warm_tokenizer, name="finops-warmup", daemon=True).start()

    @classmethod
    def from_config(cls, path: str | Path, **overrides: Any) -> FinOps:
        """Build a FinOps from a TOML file (``[finops]`` settings and ``[[budgets]]``).

        Keyword arguments override values from the file. See README "Configuration".
        """
        import tomllib

        from finops.budgets import load_budgets

        file = Path(path)
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"config file {file} does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {file} is not valid TOML: {exc}") from exc
        settings = dict(data.get("finops", {}))
        allowed = {
            "ledger",
            "spool_dir",
            "prices",
            "price_overrides",
            "unknown_model",
            "store_content",
            "budget_store",
            "estimate",
            "providers",
        }
        unknown = set(settings) - allowed
        if unknown:
            raise ConfigError(
                f"{file}: unknown [finops] setting(s) {sorted(unknown)}; allowed: {sorted(allowed)}"
            )
        for key in ("ledger", "spool_dir", "prices", "price_overrides"):
            if isinstance(settings.get(key), str):  # relative paths are relative to the file
                settings[key] = str((file.parent / settings[key]).resolve())
        store = settings.get("budget_store")
        if (
            isinstance(store, str)
            and store.startswith("sqlite:///")
            and not store.startswith("sqlite:////")
        ):
            settings["budget_store"] = "sqlite:///" + str(
                (file.parent / store[len("sqlite:///") :]).resolve()
            )
        if "budgets" in data:
            settings["budgets"] = load_budgets({"budgets": data["budgets"]})
        settings.update(overrides)
        return cls(**settings)

    # -- budgets -------------------------------------------------------------------------
    def budget_status(self) -> list[BudgetStatus]:
        """Limit, spent, reserved, remaining and burn rate of every budget (current period)."""
        return [] if self._budgets is None else self._budgets.status()

    def _seed_budget(
        self, budget: Budget, scope_key: str, start: datetime, end: datetime
    ) -> tuple[Decimal, int]:
        """Spend already in the ledger for a budget's scope and period (after a restart)."""
        self.ledger.flush(timeout_s=5)
        clauses = ["ts_start >= ?", "ts_start < ?", "status <> 'blocked'"]
        params: list[Any] = [start, end]
        for key, value in budget.scope.items():
            if value == "*":
                continue
            clauses.append("tags[?] = ?")
            params.extend([key, value])
        if scope_key:  # per-value budgets ("agent": "*"): the concrete values of this counter
            for part in scope_key.split("|"):
                key, _, value = part.partition("=")
                value = value.replace("%7C", "|").replace("%25", "%")  # scope_key escaping
                if key and key in budget.scope and budget.scope[key] == "*":
                    clauses.append("tags[?] = ?")
                    params.extend([key, value])
        result = self.ledger.query(
            "SELECT coalesce(sum(cost_total), 0), coalesce(sum("
            + " + ".join(f"coalesce({c}, 0)" for c in TOKEN_FIELDS)
            + "), 0) FROM calls WHERE "
            + " AND ".join(clauses),
            params,
        )
        cost, tokens = result[0] if result else (0, 0)
        return Decimal(cost), int(tokens)

    def _settle(self, ctx: CallContext) -> None:
        reservation = ctx.reservation
        if reservation is not None and self._budgets is not None:
            self._budgets.settle(reservation, cost=ctx.spent_cost, tokens=ctx.spent_tokens)

    def _reserve(
        self,
        hook: ClientHook,
        endpoint: str,
        kwargs: dict[str, Any],
        tags: Mapping[str, str],
        estimate: Estimate | None,
        wire: str,
    ) -> tuple[Any, dict[str, Any], Estimate | None, str | None, str | None]:
        """Reserve budget before the call. Returns (reservation, kwargs, estimate, route, flags)."""
        assert self._budgets is not None
        from finops.errors import BudgetExceeded

        model = kwargs.get("model")
        cost, tokens = _worst_case(estimate)
        try:
            reservation = self._budgets.reserve(tags=tags, cost=cost, tokens=tokens, model=model)
        except BudgetExceeded as exc:
            self._record_blocked(hook, endpoint, kwargs, tags, estimate, exc)
            raise
        route = None
        target = getattr(reservation, "downgrade_to", None)
        if target and target != model:
            # A downgrade budget is near its limit: send the call to the cheaper model instead.
            self._budgets.release(reservation)
            kwargs = {**kwargs, "model": target}
            estimate = self._estimate(wire, endpoint, kwargs)
            cost, tokens = _worst_case(estimate)
            try:
                reservation = self._budgets.reserve(
                    tags=tags, cost=cost, tokens=tokens, model=target, allow_downgrade=False
                )
            except BudgetExceeded as exc:
                self._record_blocked(hook, endpoint, kwargs, tags, estimate, exc)
                raise
            route = f"budget_downgrade:{model}->{target}"
        flags = getattr(reservation, "flags", None)
        return reservation, kwargs, estimate, route, "; ".join(flags) if flags else None

    def _record_blocked(
        self,
        hook: ClientHook,
        endpoint: str,
        kwargs: Mapping[str, Any],
        tags: Mapping[str, str],
        estimate: Estimate | None,
        exc: Exception,
    ) -> None:
        """A refused call still gets a row: status blocked, with the cost it would have had."""
        from finops.meter import blocked_row

        try:
            self.ledger.append(
                blocked_row(
                    hook,
                    endpoint=endpoint,
                    kwargs=kwargs,
                    tags=tags,
                    estimate=estimate,
                    reason=str(exc),
                    budget=getattr(exc, "budget", None),
                    now=self.clock(),
                )
            )
        except Exception as err:  # the refusal itself must still reach the caller
            warnings.warn(
                f"finops: could not record a blocked call: {err!r}", MeteringWarning, stacklevel=4
            )

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

    def _estimate(self, wire: str, endpoint: str, kwargs: Mapping[str, Any]) -> Estimate | None:
        if self.estimate_mode == "off" and self._budgets is None:
            return None
        try:
            from finops.tokens import estimate_request

            mode = self.estimate_mode
            if mode in ("auto", "off"):
                mode = "exact" if _small(kwargs) else "bound"
            return estimate_request(
                provider=wire,
                endpoint=endpoint,
                body=kwargs,
                # the worst-case price is only needed to reserve budget
                pricebook=self.pricebook() if self._budgets is not None else None,
                mode=mode,
                at=self.clock(),
            )
        except Exception as exc:  # an estimate must never break the call...
            log.warning("finops: could not estimate a %s request: %r", endpoint, exc)
        if self._budgets is None:
            return None
        # ...nor open a hole in a budget: reserve a tokenizer-free upper bound instead,
        # priced conservatively (an unknown model at a top-tier reference price).
        return cast("Estimate", _fallback_estimate(self.pricebook(), wire, kwargs, self.clock()))

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
        return wrap_client(self, client)

    def _start_call(
        self,
        hook: ClientHook,
        endpoint: str,
        kwargs: dict[str, Any],
        *,
        wire: str,
        kind: str,
    ) -> tuple[CallContext, dict[str, Any]]:
        """Pre-call steps (DESIGN.md §1, 1–4). Raises only for decisions made before sending."""
        call_tags = kwargs.pop(TAGS_KWARG, None)
        tags = current_tags()
        if call_tags:
            tags = {**tags, **{str(k): str(v) for k, v in call_tags.items() if v is not None}}
        model = kwargs.get("model")
        model = model if isinstance(model, str) else None
        stream = kind == "deferred" or kwargs.get("stream") is True

        if self.unknown_model == "raise" and model is not None:
            book = self.pricebook()
            if book.resolve(model=model, provider=hook_price_provider(hook)) is None:
                raise UnknownModelError(
                    f"finops has no price for model {model!r}, and unknown_model='raise': the "
                    f"call was not sent. Add the model to price_overrides, or use "
                    f"unknown_model='zero_flagged' or 'fallback:<model>'.",
                    provider=hook_price_provider(hook) or wire,
                    model=model,
                )

        strip = False
        if endpoint == "chat.completions" and stream:
            options = kwargs.get("stream_options")
            options = dict(options) if isinstance(options, Mapping) else {}
            if options.get("include_usage") is not True:
                options["include_usage"] = True
                kwargs = {**kwargs, "stream_options": options}
                strip = True

        estimate = self._estimate(wire, endpoint, kwargs)
        reservation = route = flags = None
        if self._budgets is not None:
            reservation, kwargs, estimate, route, flags = self._reserve(
                hook, endpoint, kwargs, tags, estimate, wire
            )
            model = kwargs.get("model") if isinstance(kwargs.get("model"), str) else model

        tier = kwargs.get("service_tier")
        ctx = hook.context(
            endpoint=endpoint,
            requested_model=model,
            stream=stream,
            tags=tags,
            strip_usage_chunk=strip,
            service_tier=tier if isinstance(tier, str) else None,
            prompt_text=_prompt_text(kwargs) if self.store_content else None,
            estimate=estimate,
            reservation=reservation,
            route_decision=route,
            budget_flags=flags,
        )
        return ctx, with_call_header(kwargs, ctx)

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
        if self._owns_ledger:
            self.ledger.close()

    def __enter__(self) -> FinOps:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_ESTIMATE_MODES = ("auto", "exact", "bound", "off")
_SMALL_REQUEST_CHARS = 16_000



def _small(kwargs: Mapping[str, Any]) -> bool:
    """Cheap check whether exact counting is affordable on the hot path (~0.13 ms / 1k tokens)."""
    total = 0
    for key in ("messages", "input", "system", "instructions", "tools"):
        value = kwargs.get(key)
        if value is None:
            continue
        total += len(value) if isinstance(value, str) else len(repr(value))
        if total > _SMALL_REQUEST_CHARS:
            return False
    return True


@dataclass(frozen=True, slots=True)
class _BoundEstimate:
    """Same fields as finops.tokens.Estimate; built without importing the tokenizer."""

    input_tokens: int
    output_tokens_max: int
    cost_max: Decimal | None
    exact: bool
    error_bound: float
    method: str
    model: str
    fallback: bool


def _fallback_estimate(book: PriceBook, wire: str, kwargs: Mapping[str, Any], now: datetime) -> Any:
    """A guaranteed upper bound without the tokenizer: one token per UTF-8 byte at most."""
    from finops.usage import Usage

    size = 64
    for key in ("messages", "input", "system", "instructions", "tools"):
        if key in kwargs:
            size += len(json.dumps(kwargs[key], default=str).encode())
    model = str(kwargs.get("model") or "")
    out = (
        kwargs.get("max_completion_tokens")
        or kwargs.get("max_tokens")
        or kwargs.get("max_output_tokens")
    )
    out_max = int(out) if isinstance(out, int) else 0
    if not out_max:
        out_max = book.max_output_tokens(provider=None, model=model) or 32_768
    usage = Usage(input_tokens=size, output_tokens=out_max)
    cost = book.price(provider=None, model=model, usage=usage, at=now)
    if cost.status == "unknown_model":
        reference = "claude-opus-4-1" if wire == "anthropic" else "gpt-4o"
        cost = book.price(provider=None, model=reference, usage=usage, at=now)
    return _BoundEstimate(
        input_tokens=size,
        output_tokens_max=out_max,
        cost_max=cost.total,
        exact=False,
        error_bound=3.0,
        method="fallback:utf8-bytes",
        model=model,
        fallback=True,
    )


def _worst_case(estimate: Estimate | None) -> tuple[Decimal, int]:
    """The amount to reserve. Without an estimate, reserve nothing in USD but 1 token so
    token budgets at their limit still refuse (a call is never free of tokens)."""
    if estimate is None:
        return Decimal(0), 1
    cost = estimate.cost_max if estimate.cost_max is not None else Decimal(0)
    return cost, int(estimate.input_tokens) + int(estimate.output_tokens_max)


def _warm_tokenizer() -> None:
    try:
        from finops.tokens.encodings import get_encoding

        get_encoding("o200k_base")
    except Exception as exc:  # estimates will report the problem on first use
        log.debug("finops: tokenizer warm-up failed: %r", exc)


def _host_map(providers: Mapping[str, Any], book: Callable[[], PriceBook]) -> Any:
    from finops.providers.hosts import HostMap, known_price_providers

    return HostMap(providers, known_providers=known_price_providers(book()))


def hook_price_provider(hook: ClientHook) -> str | None:
    """The price-table provider a wrapped client's calls are priced under."""
    return hook._price_provider


def _prompt_text(kwargs: Mapping[str, Any]) -> str | None:
    picked = {
        k: kwargs[k]
        for k in ("system", "instructions", "messages", "input", "tools")
        if k in kwargs
    }
    if not picked:
        return None
    try:
        return json.dumps(picked, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return None
