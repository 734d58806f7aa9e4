"""``finops.FinOps``: the one configured object (ledger, prices, policies) and ``wrap``."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from finops.context import current_tags
from finops.errors import ConfigError, UnknownModelError
from finops.intercept.calls import CallContext
from finops.intercept.facade import with_call_header, wrap_client
from finops.meter import Meter, utc_now

if TYPE_CHECKING:
    from finops.ledger import Ledger
    from finops.meter import ClientHook
    from finops.pricing import PriceBook

__all__ = ["FinOps"]

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
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        from finops.ledger import Ledger

        self.unknown_model = _check_unknown_policy(unknown_model)
        self.store_content = bool(store_content)
        self.clock = clock or utc_now
        self._prices_arg = prices
        self._overrides = price_overrides
        self._pricebook: PriceBook | None = None
        self._pricebook_lock = threading.Lock()
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
        )
        self._closed = False

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

        tier = kwargs.get("service_tier")
        ctx = hook.context(
            endpoint=endpoint,
            requested_model=model,
            stream=stream,
            tags=tags,
            strip_usage_chunk=strip,
            service_tier=tier if isinstance(tier, str) else None,
            prompt_text=_prompt_text(kwargs) if self.store_content else None,
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
