"""The ``finops`` command: a thin shell over the library (every command calls public code).

finops demo                     run the demo workload against the local server
finops report [--by team]       spend from a ledger
finops serve-fake               run the local OpenAI/Anthropic-compatible server
finops tokens / estimate        count tokens, worst-case cost of a request
finops budgets                  budget status
finops cache stats|clear|calibrate   the response cache
finops ledger status|compact    where ledger rows are; fold small parts

The app and its top-level commands are in :mod:`finops.cli.app`; each command group is a
module of its own (``finops/cli/tokens.py``, ``budgets.py``, ...), listed in
:data:`finops.cli.app.SUBCOMMANDS`.
"""

from __future__ import annotations

from finops.cli.app import app, main

__all__ = ["app", "main"]
