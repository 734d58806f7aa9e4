"""Provider adapters: one per (provider, endpoint), all producing a normalized ``Usage``.

:func:`classify` maps a request URL path to the metered endpoint it belongs to;
:func:`adapter_for` returns the adapter that parses that endpoint's responses
(:mod:`finops.providers.registry`). :mod:`finops.providers.stream_usage` is the call-path step
that makes OpenAI chat streams report usage.
"""

from __future__ import annotations

from finops.providers.base import Parsed, ProviderAdapter, StreamWatcher
from finops.providers.registry import adapter_for, classify

__all__ = ["Parsed", "ProviderAdapter", "StreamWatcher", "adapter_for", "classify"]
