"""Runs the composed steps for each call: ``before`` in order; ``on_row``, ``after`` reversed."""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from finops.context import current_tags
from finops.errors import ConfigError, MeteringWarning
from finops.pipeline.call import Call
from finops.pipeline.step import KNOWN_OPTIONS, Step

if TYPE_CHECKING:
    from finops.ledger.row import LedgerRow
    from finops.metering import ClientHook

__all__ = ["Pipeline"]

log = logging.getLogger("finops")

_OPTION_PREFIX = "finops_"


def _overrides(step: Step, hook: str) -> bool:
    return getattr(type(step), hook) is not getattr(Step, hook)


class Pipeline:
    """The ordered steps of the call path, composed once (see :mod:`finops.pipeline.compose`).

    Only steps that implement a hook are visited for it, so a configuration with no cache,
    no routing and no budget costs nothing for them on the hot path.
    """

    __slots__ = ("_after", "_row", "steps", "store_content")

    def __init__(self, steps: Sequence[Step], *, store_content: bool = False) -> None:
        self.steps: tuple[Step, ...] = tuple(steps)
        for step in self.steps:
            unknown = step.options - KNOWN_OPTIONS
            if unknown:
                raise ConfigError(
                    f"step {step.name!r} reads per-call options {sorted(unknown)} that are not "
                    f"declared in finops.pipeline.step.KNOWN_OPTIONS; add them there"
                )
        self.store_content = store_content
        # Like middleware, the response side runs inside-out: the step nearest the network
        # (a cache that served the call) amends the row first, outer steps see the result.
        self._row = tuple(
            (i, s) for i, s in reversed(list(enumerate(self.steps))) if _overrides(s, "on_row")
        )
        self._after = tuple(
            (i, s) for i, s in reversed(list(enumerate(self.steps))) if _overrides(s, "after")
        )

    @property
    def response_hooks(self) -> bool:
        """Whether any step has an ``on_row`` or ``after`` hook."""
        return bool(self._row or self._after)

    @property
    def after_hooks(self) -> bool:
        """Whether any step has an ``after`` hook. Those run when the call returns and read
        the priced rows (a budget settles, a cache stores the answer), so the meter builds
        rows on the caller's thread then. ``on_row`` hooks alone (routing's savings) only
        amend the row being built: they run wherever it is built (the builder thread)."""
        return bool(self._after)

    # -- before the network ----------------------------------------------------------------
    def start(
        self,
        hook: ClientHook,
        endpoint: str,
        kwargs: dict[str, Any],
        *,
        kind: str,
        is_async: bool = False,
    ) -> Call:
        """A new call for one wrapped-method invocation, with every ``before`` run on it.

        Raises whatever a step raises to refuse the call (nothing has been sent then).
        """
        options: dict[str, Any] = {}
        for key in [k for k in kwargs if k.startswith(_OPTION_PREFIX)]:
            options[key] = kwargs.pop(key)
        if options and not options.keys() <= KNOWN_OPTIONS:
            bad = sorted(options.keys() - KNOWN_OPTIONS)
            raise ConfigError(
                f"unknown finops option(s) {bad} on a {endpoint} call; finops takes "
                f"{sorted(KNOWN_OPTIONS)} (nothing was sent)"
            )
        tags = current_tags()
        call_tags = options.get("finops_tags")
        if call_tags:
            if not isinstance(call_tags, Mapping):
                raise ConfigError(
                    f"finops_tags must be a mapping of tag names to values, got "
                    f"{type(call_tags).__name__} (nothing was sent)"
                )
            tags = {**tags, **{str(k): str(v) for k, v in call_tags.items() if v is not None}}
        model = kwargs.get("model")
        tier = kwargs.get("service_tier")
        call = hook.new_call(
            endpoint=endpoint,
            requested_model=model if isinstance(model, str) else None,
            stream=kind == "deferred" or kwargs.get("stream") is True,
            tags=tags,
            kwargs=kwargs,
            options=options,
            kind=kind,
            service_tier=tier if isinstance(tier, str) else None,
        )
        call.is_async = is_async
        self.before(call)
        model = call.kwargs.get("model")
        if isinstance(model, str):
            call.requested_model = model
        if self.store_content:
            call.prompt_text = _prompt_text(call.kwargs)
        hook.register(call)
        return call

    def before(self, call: Call) -> None:
        """Run ``before`` of each step in order; stop at the first that serves the call.

        If a step refuses (raises), the steps that already ran get ``after`` with the call
        as it stands (nothing sent), so they can undo what they did (release a reservation).
        """
        done = 0
        try:
            for step in self.steps:
                served = step.before(call)
                done += 1
                if served is not None:
                    call.served = served
                    break
        except BaseException:
            call.steps_ran = done
            self._after_steps(call, done)
            raise
        if done < len(self.steps):
            call.steps_ran = done  # only the steps that ran see on_row / after

    # -- after the network -----------------------------------------------------------------
    def on_row(self, call: Call, row: LedgerRow) -> None:
        """Write the steps' fields on one attempt's row, then let each step amend it
        (last step first)."""
        ran = len(self.steps) if call.steps_ran is None else call.steps_ran
        for name, value in call.row.items():
            setattr(row, name, value)
        for index, step in self._row:
            if index < ran:
                step.on_row(call, row)

    def after(self, call: Call) -> None:
        """The call is over: run ``after`` of the steps that ran, last step first."""
        self._after_steps(call, len(self.steps) if call.steps_ran is None else call.steps_ran)

    def _after_steps(self, call: Call, ran: int) -> None:
        if not self._after:
            return
        outcome = call.outcome()
        for index, step in self._after:
            if index >= ran:
                continue
            try:
                step.after(call, outcome)
            except Exception as exc:  # the response already reached the caller
                message = f"finops: step {step.name!r} failed after call {call.call_id}: {exc!r}"
                log.warning(message)
                warnings.warn(message, MeteringWarning, stacklevel=2)

    def __repr__(self) -> str:
        return "Pipeline(" + " → ".join(s.name for s in self.steps) + ")"


def _prompt_text(kwargs: Mapping[str, Any]) -> str | None:
    picked = {
        k: kwargs[k] for k in ("system", "instructions", "messages", "input", "tools") if k in kwargs
    }
    if not picked:
        return None
    try:
        return json.dumps(picked, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return None
