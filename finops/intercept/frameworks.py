"""Framework chat models that build their own SDK client: give them a wrapped one.

LangChain's ``ChatOpenAI`` (and ``AzureChatOpenAI``) constructs its ``openai`` clients itself
and replaces any handed to its constructor, so a wrapped client given as ``root_client=`` is
silently dropped. ``fo.wrap(chat_model)`` instead returns a *copy* of the chat model whose
``root_client`` / ``client`` / ``root_async_client`` / ``async_client`` are the wrapped
clients — the attributes the model calls at run time — so every call it makes runs the
call-path steps (budgets refuse before the network) and is metered. The original model is
left untouched. Frameworks that accept a client (pydantic-ai's ``OpenAIProvider(
openai_client=...)``, the OpenAI Agents SDK's ``set_default_openai_client``) need nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["is_langchain_chat", "wrap_langchain"]


def is_langchain_chat(obj: object) -> bool:
    """Whether ``obj`` is a LangChain chat model holding openai clients (``ChatOpenAI``...)."""
    return type(obj).__module__.startswith("langchain_openai") and hasattr(obj, "root_client")


def wrap_langchain(model: Any, wrap: Callable[[Any], Any]) -> Any:
    """A copy of a LangChain OpenAI chat model whose clients are wrapped by ``wrap``."""
    update: dict[str, Any] = {}
    root = getattr(model, "root_client", None)
    if root is not None:
        wrapped = wrap(root)
        update["root_client"] = wrapped
        update["client"] = wrapped.chat.completions
    aroot = getattr(model, "root_async_client", None)
    if aroot is not None:
        awrapped = wrap(aroot)
        update["root_async_client"] = awrapped
        update["async_client"] = awrapped.chat.completions
    return model.model_copy(update=update)
