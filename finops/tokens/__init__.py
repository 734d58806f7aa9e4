"""Token counts and worst-case cost *before* a call is sent — offline, never downloading.

* OpenAI: exact BPE counts with the bundled, hash-verified ``o200k_base`` / ``cl100k_base``
  encodings (:mod:`finops.tokens.encodings`) and the cookbook chat format (3 tokens a
  message, +1 per ``name``, +3 priming the reply); tool definitions with the cookbook's
  function-schema formula, images with the documented tile/patch formula
  (:mod:`finops.tokens.openai`).
* Anthropic: no public tokenizer; a calibrated estimate from ``o200k_base`` plus constants
  fitted on real recorded calls (:mod:`finops.tokens.anthropic`, docs/tokens.md).
* ``estimate_request(..., mode="bound")``: a cheap upper bound for the budget hot path.
* Every :class:`Estimate` has ``input_tokens_max``: never below the provider's billed input
  on 1,159 recorded calls (provider-added prompts and unseen media bounded); budgets
  reserve ``tokens_max``. :func:`explain_request` breaks an estimate into its parts.

Every :class:`Estimate` says whether it is exact, its relative error bound and its method.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from finops._lazy import lazy_attributes

# name -> module that defines it, imported on first use: the call path imports
# ``finops.tokens.step`` for every FinOps, which must not load the estimators (and their
# data tables) before a first call needs one.
_LAZY: dict[str, str] = {
    "DEFAULT_MAX_OUTPUT": "finops.tokens.estimate",
    "FALLBACK_MODELS": "finops.tokens.estimate",
    "Estimate": "finops.tokens.estimate",
    "ModelFamily": "finops.tokens.models",
    "Part": "finops.tokens.explain",
    "PriceBookLike": "finops.tokens.estimate",
    "PricedLike": "finops.tokens.estimate",
    "anthropic_image_tokens": "finops.tokens.images",
    "count_tokens": "finops.tokens.estimate",
    "estimate_request": "finops.tokens.estimate",
    "explain_request": "finops.tokens.explain",
    "family_for": "finops.tokens.models",
    "get_encoding": "finops.tokens.encodings",
    "openai_image_tokens": "finops.tokens.images",
}

if TYPE_CHECKING:
    from finops.tokens.encodings import get_encoding
    from finops.tokens.estimate import (
        DEFAULT_MAX_OUTPUT,
        FALLBACK_MODELS,
        Estimate,
        PriceBookLike,
        PricedLike,
        count_tokens,
        estimate_request,
    )
    from finops.tokens.explain import Part, explain_request
    from finops.tokens.images import anthropic_image_tokens, openai_image_tokens
    from finops.tokens.models import ModelFamily, family_for


__getattr__, __dir__ = lazy_attributes('finops.tokens', _LAZY, globals())


__all__ = [
    "DEFAULT_MAX_OUTPUT",
    "FALLBACK_MODELS",
    "Estimate",
    "ModelFamily",
    "Part",
    "PriceBookLike",
    "PricedLike",
    "anthropic_image_tokens",
    "count_tokens",
    "estimate_request",
    "explain_request",
    "family_for",
    "get_encoding",
    "openai_image_tokens",
]
