"""Framework chat models that build their own SDK client: give them a wrapped one.

LangChain's chat models construct their SDK clients themselves, and most replace any client
handed to their constructor, so a wrapped client given to them is silently dropped (their
calls then reach the provider unmetered and unbudgeted). ``fo.wrap(chat_model)`` instead
returns a *copy* of the chat model whose clients — the attributes the model calls at run
time — are wrapped clients, so every call it makes runs the call-path steps (budgets refuse
before the network) and is metered. The original model is left untouched, except where the
SDK client can only be metered in place (Bedrock, below).

* ``langchain-openai`` ``ChatOpenAI`` / ``AzureChatOpenAI``: ``root_client`` / ``client`` /
  ``root_async_client`` / ``async_client`` (pydantic fields). Every resource method they
  call runs the steps: ``chat.completions`` (``create``, ``with_raw_response.create`` /
  ``parse``), ``beta.chat.completions.stream`` (a streamed ``response_format``),
  ``responses`` (``create``, ``parse``, raw and streamed).
* ``langchain-openai`` ``OpenAIEmbeddings`` / ``AzureOpenAIEmbeddings``: ``client`` /
  ``async_client`` hold the SDK's ``embeddings`` resource; the copy holds the ``embeddings``
  resource of a wrapped copy of the client behind it. (They also accept
  ``client=fo.wrap(openai.OpenAI()).embeddings`` directly.)
* ``langchain-anthropic`` ``ChatAnthropic``: ``_client`` / ``_async_client``, which the model
  builds on first use (``functools.cached_property``) and calls as
  ``messages.with_raw_response.create``; the copy's cached values are the wrapped clients.
* ``langchain-google-genai`` ``ChatGoogleGenerativeAI`` and
  ``GoogleGenerativeAIEmbeddings``: ``client`` (a ``google.genai.Client``; its ``aio`` side is
  the async client). The copy gets its own close-on-collect token for the wrapped client, so
  closing the copy does not close the original's client.
* ``langchain-aws`` ``ChatBedrockConverse`` / ``ChatBedrock``: ``client`` (a boto3
  ``bedrock-runtime`` client). botocore cannot copy a client, so it is metered in place and
  the *same* model is returned (the original model is then metered too). These models also
  accept ``client=fo.wrap(boto3.client("bedrock-runtime"))`` directly.

LlamaIndex LLMs keep their SDK clients in private attributes ``_client`` / ``_aclient``
(``_async_client``): ``fo.wrap(llm)`` returns a copy holding wrapped ones.

* ``llama-index-llms-anthropic`` ``Anthropic`` builds ``anthropic.Anthropic`` /
  ``AsyncAnthropic`` (or the Bedrock / Vertex variants) in its constructor and takes no
  client argument: wrapping the LLM is the seam.
* ``llama-index-llms-bedrock-converse`` ``BedrockConverse`` takes ``client=`` (pass
  ``fo.wrap(boto3.client("bedrock-runtime"))``); ``fo.wrap(llm)`` meters its own client in
  place and returns the same LLM. Its async methods use that client in a thread unless
  ``aioboto3`` is installed (then they use an aioboto3 session finops does not see).
* ``llama-index-llms-google-genai`` ``GoogleGenAI`` builds a ``google.genai.Client`` in its
  constructor (``_client``; its ``aio`` side is the async client) and takes no client
  argument: wrapping the LLM is the seam (its ``chats`` send through the wrapped ``models``).
* ``llama-index-llms-openai`` creates its clients lazily; pass ``openai_client=`` /
  ``async_openai_client=`` wrapped clients instead (``fo.wrap`` refuses an LLM holding no
  client yet, saying so).

Both LlamaIndex packages pin the SDK's previous major (``openai<3``, ``google-genai<3``);
installed with ``pip install --no-deps`` they work with the 3.x SDKs finops needs (tested).

Frameworks that accept a client (pydantic-ai's ``OpenAIProvider(openai_client=...)``, the
OpenAI Agents SDK's ``set_default_openai_client``) need nothing from this module.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

__all__ = [
    "is_framework_model",
    "is_langchain_chat",
    "is_llamaindex_llm",
    "wrap_framework",
    "wrap_langchain",
    "wrap_llamaindex",
]

_PACKAGES = ("langchain_openai", "langchain_anthropic", "langchain_google_genai", "langchain_aws")


def _package(obj: object) -> str | None:
    module = type(obj).__module__
    for package in _PACKAGES:
        if module == package or module.startswith(package + "."):
            return package
    return None


def is_langchain_chat(obj: object) -> bool:
    """Whether ``obj`` is a LangChain model finops can wrap: ``ChatOpenAI`` (and Azure),
    ``ChatAnthropic``, ``ChatGoogleGenerativeAI`` (and Google embeddings), or a Bedrock chat
    model of ``langchain-aws`` — any model of those packages that holds an SDK client."""
    package = _package(obj)
    if package is None or not hasattr(obj, "model_copy"):
        return False
    if package == "langchain_openai":
        return hasattr(obj, "root_client") or any(
            _embeddings_root(getattr(obj, name, None)) is not None for name in _EMBEDDING_FIELDS
        )
    if package == "langchain_anthropic":
        return hasattr(type(obj), "_client") and hasattr(type(obj), "_async_client")
    return _client_field(obj) is not None


def is_llamaindex_llm(obj: object) -> bool:
    """Whether ``obj`` is a LlamaIndex LLM (``llama_index.llms.*``) with SDK clients in its
    private ``_client`` / ``_aclient`` / ``_async_client`` attributes."""
    if not type(obj).__module__.startswith("llama_index.llms."):
        return False
    private = getattr(obj, "__pydantic_private__", None)
    return isinstance(private, dict) and "_client" in private


def is_framework_model(obj: object) -> bool:
    """Whether ``fo.wrap`` treats ``obj`` as a framework model (LangChain or LlamaIndex)."""
    return is_langchain_chat(obj) or is_llamaindex_llm(obj)


def wrap_framework(model: Any, wrap: Callable[[Any], Any]) -> Any:
    """``wrap_langchain`` or ``wrap_llamaindex``, whichever ``model`` is."""
    if is_llamaindex_llm(model):
        return wrap_llamaindex(model, wrap)
    return wrap_langchain(model, wrap)


_LLAMA_CLIENTS = ("_client", "_aclient", "_async_client")


def _sdk_client(client: object) -> bool:
    from finops.intercept.bedrock import is_bedrock_client
    from finops.intercept.google import is_genai_client

    root = type(client).__module__.split(".")[0]
    return root in ("openai", "anthropic") or is_bedrock_client(client) or is_genai_client(client)


def wrap_llamaindex(model: Any, wrap: Callable[[Any], Any]) -> Any:
    """A copy of a LlamaIndex LLM whose SDK clients are wrapped by ``wrap`` (a Bedrock
    client is metered in place and the same LLM returned)."""
    from finops.intercept.bedrock import is_bedrock_client

    private: dict[str, Any] = model.__pydantic_private__
    found = {
        name: private[name]
        for name in _LLAMA_CLIENTS
        if private.get(name) is not None and _sdk_client(private[name])
    }
    if not found:
        raise TypeError(
            f"finops cannot wrap {type(model).__qualname__}: it holds no openai, anthropic, "
            "google.genai or bedrock-runtime client yet; pass wrapped clients to its "
            "constructor instead (e.g. openai_client=fo.wrap(openai.OpenAI()), or "
            "client=fo.wrap(boto3.client(...)))"
        )
    if all(is_bedrock_client(client) for client in found.values()):
        for client in found.values():
            wrap(client)  # in place: the LLM already calls this very client
        return model
    copy = model.model_copy()
    for name, client in found.items():
        setattr(copy, name, wrap(client))
    return copy


def _client_field(obj: object) -> Any:
    """The SDK client in a model's ``client`` field (Google, Bedrock), or None."""
    from finops.intercept.bedrock import is_bedrock_client
    from finops.intercept.google import is_genai_client

    client = getattr(obj, "client", None)
    if client is not None and (is_genai_client(client) or is_bedrock_client(client)):
        return client
    return None


def wrap_langchain(model: Any, wrap: Callable[[Any], Any]) -> Any:
    """A copy of a LangChain model whose SDK clients are wrapped by ``wrap`` (see the module
    docstring; for Bedrock the same model, its client metered in place)."""
    package = _package(model)
    if package == "langchain_openai":
        return _wrap_openai(model, wrap)
    if package == "langchain_anthropic":
        return _wrap_anthropic(model, wrap)
    client = _client_field(model)
    if client is None:
        raise TypeError(f"finops cannot wrap {type(model).__qualname__}: it holds no SDK client")
    from finops.intercept.bedrock import is_bedrock_client

    if is_bedrock_client(client):
        wrap(client)  # in place: the model already calls this very client
        return model
    wrapped = wrap(client)
    copy = model.model_copy(update={"client": wrapped})
    _own_cleanup(model, copy, wrapped)
    return copy


_EMBEDDING_FIELDS = ("client", "async_client")


def _embeddings_root(resource: object) -> Any:
    """The ``openai.OpenAI`` / ``AsyncOpenAI`` (or Azure) client behind an ``embeddings``
    resource (what ``OpenAIEmbeddings`` keeps in ``client`` / ``async_client``), or None.

    The SDK resource keeps its client in ``_client``; it is only read, to wrap a copy."""
    if type(resource).__name__ not in ("Embeddings", "AsyncEmbeddings"):
        return None
    if not type(resource).__module__.startswith("openai."):
        return None
    root = getattr(resource, "_client", None)
    if root is None or type(root).__module__.split(".")[0] != "openai":
        return None
    return root


def _wrap_openai(model: Any, wrap: Callable[[Any], Any]) -> Any:
    update: dict[str, Any] = {}
    if not hasattr(model, "root_client"):  # OpenAIEmbeddings / AzureOpenAIEmbeddings
        for name in _EMBEDDING_FIELDS:
            root = _embeddings_root(getattr(model, name, None))
            if root is not None:
                update[name] = wrap(root).embeddings
        return model.model_copy(update=update)
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


def _wrap_anthropic(model: Any, wrap: Callable[[Any], Any]) -> Any:
    copy = model.model_copy()
    # ``_client`` / ``_async_client`` are cached properties: values the original computed
    # were copied with its __dict__; the copy builds its own, and caches the wrapped ones.
    for name in ("_client", "_async_client"):
        copy.__dict__.pop(name, None)
    for name in ("_client", "_async_client"):
        copy.__dict__[name] = wrap(getattr(copy, name))
    return copy


def _own_cleanup(model: Any, copy: Any, client: Any) -> None:
    """ChatGoogleGenerativeAI closes its client when the model is collected (a private
    ``_client_cleanup`` token): the copy must close the wrapped client, not share the
    original's token (which would close the original's client)."""
    private = getattr(model, "__pydantic_private__", None) or {}
    token = private.get("_client_cleanup")
    if token is None:
        return
    # a changed private API: keep the shared token (closing is best effort)
    with contextlib.suppress(Exception):
        copy._client_cleanup = type(token)(client)
