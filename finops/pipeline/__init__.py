"""The call path as composable steps (DESIGN.md §1, docs/architecture.md).

* :class:`Call` — one logical SDK call, shared by the steps, the transport and the meter.
* :class:`Step` — the protocol: ``before`` (refuse by raising, serve by returning
  :class:`Served`), ``on_row`` (amend each attempt's ledger row), ``after`` (the call ended,
  with its :class:`Outcome`).
* :func:`build_steps` — the one composition list; :class:`Pipeline` runs it per call.
"""

from __future__ import annotations

from finops.pipeline.call import Call, CallContext, Outcome, Served
from finops.pipeline.compose import StepConfig, build_steps
from finops.pipeline.runner import Pipeline
from finops.pipeline.step import KNOWN_OPTIONS, LedgerAccess, Step, StepEnv

__all__ = [
    "KNOWN_OPTIONS",
    "Call",
    "CallContext",
    "LedgerAccess",
    "Outcome",
    "Pipeline",
    "Served",
    "Step",
    "StepConfig",
    "StepEnv",
    "build_steps",
]
