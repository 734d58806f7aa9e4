"""The one normalized shape of token usage.

Providers disagree on arithmetic: OpenAI's ``prompt_tokens`` *includes* cached tokens and
``completion_tokens`` *includes* reasoning tokens, while Anthropic's ``input_tokens``
*excludes* cache reads and cache writes (they add up). Every provider adapter converts its
wire format into :class:`Usage`, whose components are **disjoint**: each token is counted in
exactly one field, and each field has exactly one price. Totals are derived, never stored,
so nothing can be double counted downstream.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

__all__ = ["TOKEN_FIELDS", "StepUsage", "Usage"]


@dataclass(frozen=True, slots=True)
class Usage:
    """Token usage of one model response, split into disjoint, separately priced parts.

    Input side (sums to :attr:`total_input_tokens`):
        ``input_tokens``: uncached, non-audio input (text, images, documents).
        ``cache_read_tokens``: input served from the provider's prompt cache.
        ``cache_write_5m_tokens`` / ``cache_write_1h_tokens``: input written to the cache
        (Anthropic's two TTLs have different prices; OpenAI writes report as 5m).
        ``input_audio_tokens``: uncached audio input.
        ``cache_read_audio_tokens``: audio input served from the cache.

    Output side (sums to :attr:`total_output_tokens`):
        ``output_tokens``: visible text output, *excluding* reasoning and audio.
        ``reasoning_tokens``: hidden reasoning / thinking tokens (billed as output).
        ``output_audio_tokens``: audio output.

    Other:
        ``server_tool_requests``: billed per call, e.g. ``{"web_search": 2}``.
        ``steps``: extra server-side sampling steps billed on top (Anthropic
        ``usage.iterations`` compaction/advisor steps), each priced at its own model.
        ``mismatch``: set by the adapter when the provider's own totals do not equal the
        sum of the components (the row is flagged, the numbers are not "fixed").
        ``estimated``: the counts were estimated by finops (e.g. a cancelled stream),
        not reported by the provider.
    """

    input_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    input_audio_tokens: int = 0
    cache_read_audio_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    output_audio_tokens: int = 0
    server_tool_requests: Mapping[str, int] = field(default_factory=dict, hash=False)
    steps: tuple[StepUsage, ...] = ()
    mismatch: str | None = None
    estimated: bool = False

    def __post_init__(self) -> None:
        for f in TOKEN_FIELDS:
            value = getattr(self, f)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"Usage.{f} must be a non-negative int, got {value!r}")

    @property
    def cache_write_tokens(self) -> int:
        """Cache writes of both TTLs."""
        return self.cache_write_5m_tokens + self.cache_write_1h_tokens

    @property
    def total_input_tokens(self) -> int:
        """Every input token, cached or not (what OpenAI calls ``prompt_tokens``)."""
        return (
            self.input_tokens
            + self.cache_read_tokens
            + self.cache_write_5m_tokens
            + self.cache_write_1h_tokens
            + self.input_audio_tokens
            + self.cache_read_audio_tokens
        )

    @property
    def total_output_tokens(self) -> int:
        """Every output token including reasoning and audio (``completion_tokens``)."""
        return self.output_tokens + self.reasoning_tokens + self.output_audio_tokens

    @property
    def total_tokens(self) -> int:
        """Input plus output of this response (steps excluded)."""
        return self.total_input_tokens + self.total_output_tokens

    def with_flags(self, *, mismatch: str | None = None, estimated: bool | None = None) -> Usage:
        """A copy with the mismatch note and/or the estimated flag replaced."""
        return replace(
            self,
            mismatch=mismatch if mismatch is not None else self.mismatch,
            estimated=self.estimated if estimated is None else estimated,
        )

    def as_dict(self) -> dict[str, Any]:
        """Plain-JSON form (used by the ledger and the CLI)."""
        out: dict[str, Any] = {f: getattr(self, f) for f in TOKEN_FIELDS}
        out["server_tool_requests"] = dict(self.server_tool_requests)
        out["steps"] = [
            {"model": s.model, "kind": s.kind, "usage": s.usage.as_dict()} for s in self.steps
        ]
        out["mismatch"] = self.mismatch
        out["estimated"] = self.estimated
        return out


@dataclass(frozen=True, slots=True)
class StepUsage:
    """An extra billed sampling step (Anthropic ``usage.iterations``) and its own model."""

    model: str
    kind: str
    usage: Usage


TOKEN_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Usage) if f.type in ("int", int))
