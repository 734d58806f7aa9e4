"""Which adapter parses which endpoint: request paths → endpoints → adapters."""

from __future__ import annotations

from finops.providers.anthropic import MessagesAdapter
from finops.providers.base import ProviderAdapter
from finops.providers.google import EmbedAdapter, GenerateAdapter
from finops.providers.openai import ChatAdapter, EmbeddingsAdapter, ResponsesAdapter

__all__ = ["adapter_for", "classify"]

_ADAPTERS: dict[tuple[str, str], ProviderAdapter] = {
    ("openai", "chat.completions"): ChatAdapter(),
    ("openai", "responses"): ResponsesAdapter(),
    ("openai", "embeddings"): EmbeddingsAdapter(),
    ("anthropic", "messages"): MessagesAdapter(),
    ("google", "generate_content"): GenerateAdapter(),
    ("google", "embed_content"): EmbedAdapter(),
}

# URL path suffix -> endpoint name. Order matters only for readability: suffixes are disjoint.
_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("/chat/completions", "chat.completions"),
    ("/responses", "responses"),
    ("/embeddings", "embeddings"),
    ("/messages", "messages"),
    # Gemini API and Vertex AI: .../models/{model}:{method}
    (":generateContent", "generate_content"),
    (":streamGenerateContent", "generate_content"),
    (":embedContent", "embed_content"),
    (":batchEmbedContents", "embed_content"),
)


def classify(path: str) -> str | None:
    """The metered endpoint for a request path (``/v1/chat/completions`` → ``chat.completions``).

    ``/v1/messages/count_tokens``, ``/v1/messages/batches`` and other non-generation paths
    return None: they are passed through unmetered.
    """
    path = path.rstrip("/")
    for suffix, endpoint in _SUFFIXES:
        if path.endswith(suffix):
            return endpoint
    return None


def adapter_for(provider: str, endpoint: str) -> ProviderAdapter | None:
    """The adapter for an endpoint; OpenAI-compatible hosts use the OpenAI adapters."""
    return _ADAPTERS.get((provider, endpoint)) or _ADAPTERS.get(("openai", endpoint))
