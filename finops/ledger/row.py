"""The ledger row: one row per HTTP attempt (retries are separate rows sharing ``call_id``).

This dataclass is the contract between the metering pipeline (which fills it) and the
ledger (which stores it). Column names in DuckDB are exactly these field names.
Money fields are ``Decimal`` (stored as ``DECIMAL(38, 12)``); ``None`` means "not known".
No field ever holds an API key or an auth header.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

__all__ = ["STATUSES", "LedgerRow"]

#: Allowed values of :attr:`LedgerRow.status`.
STATUSES = frozenset({"ok", "error", "cancelled", "blocked", "cache_hit"})


@dataclass(slots=True)
class LedgerRow:
    """One metered HTTP attempt (or one blocked / cache-served call)."""

    # identity
    row_id: str  # unique id of this row; the idempotency key for spool replay
    call_id: str  # one logical SDK call; retries share it
    attempt: int  # 1 for the first HTTP attempt of the call, 2 for the first retry, ...
    ts_start: datetime  # timezone-aware UTC
    ts_end: datetime
    latency_ms: float
    provider: str  # "openai" | "anthropic" | ... (price-table provider id)
    endpoint: str  # "chat.completions" | "responses" | "embeddings" | "messages" | path
    status: str  # one of STATUSES
    trace_id: str | None = None
    parent_id: str | None = None

    # request / response
    requested_model: str | None = None
    served_model: str | None = None
    stream: bool = False
    http_status: int | None = None
    error_type: str | None = None  # e.g. "RateLimitError" / "http_429" / "truncated_stream"
    error_message: str | None = None
    route_decision: str | None = None  # later: routing
    cache_status: str | None = None  # exact_hit | semantic_hit | miss | stored | bypass | refresh

    # usage (disjoint components, see finops.usage.Usage)
    input_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_5m_tokens: int | None = None
    cache_write_1h_tokens: int | None = None
    input_audio_tokens: int | None = None
    cache_read_audio_tokens: int | None = None
    output_tokens: int | None = None
    reasoning_tokens: int | None = None
    output_audio_tokens: int | None = None
    server_tool_requests: dict[str, int] = field(default_factory=dict)
    usage_estimated: bool = False  # counts estimated by finops, not reported by the provider
    usage_mismatch: str | None = None  # provider totals != sum of components (not "fixed")

    # cost (Decimal USD)
    cost_input: Decimal | None = None  # uncached input + audio input
    cost_cache_read: Decimal | None = None
    cost_cache_write: Decimal | None = None
    cost_output: Decimal | None = None  # output + reasoning + audio output
    cost_tools: Decimal | None = None  # server-side tool requests, per call
    cost_steps: Decimal | None = None  # extra sampling steps (Anthropic iterations)
    cost_total: Decimal | None = None
    counterfactual_cost: Decimal | None = None  # without cache / routing (later issues)
    currency: str = "USD"
    price_version: str | None = None
    pricing_status: str | None = (
        None  # priced | unknown_model | fallback:<model> | error | invalid_usage
    )

    # pre-call estimate (finops.tokens) next to the provider's actual numbers
    est_input_tokens: int | None = None
    est_output_tokens_max: int | None = None
    est_cost_max: Decimal | None = None
    est_exact: bool | None = None

    # budgets (later issue): names of budgets involved and the warn flag
    budget_flags: str | None = None

    # context
    tags: dict[str, str] = field(default_factory=dict)
    request_hash: str | None = None  # sha256 of the canonical request body
    prompt_text: str | None = None  # only with store_content=True
    response_text: str | None = None  # only with store_content=True
    finops_error: str | None = None  # what went wrong inside finops while metering, if anything

    # cache (issue 11; migration m003_cache): which entry served the call, from which tier
    cache_entry_id: str | None = None  # id of the stored entry served (or stored, on a miss)
    cache_similarity: float | None = None  # cosine of a semantic hit
    cache_tier: str | None = None  # "memory" | "store" for a hit

    # what the host itself reported (migration m004_host_cost) (OpenRouter usage.cost), beside finops' own cost
    host_cost: Decimal | None = None
    host_cost_detail: str | None = None  # why it differs: byok, plugin fees, ...

    # routing (finops.routing; migration m005_routing): the decision's score, policy, CPU cost
    route_score: float | None = None  # router score (higher: the strong model is needed)
    route_policy: str | None = None  # "<policy name>@<router model version>"
    route_cpu_us: float | None = None  # the router's own CPU time for this decision
    counterfactual_estimated: bool | None = None  # counterfactual_cost re-priced, not measured
