"""The tokenizer-free bound (used when an estimate fails, and for the Gemini/Bedrock wires)
reserves a documented maximum for media the request only points at."""

from __future__ import annotations

from datetime import UTC, datetime

from finops.pricing import PriceBook
from finops.tokens.anthropic import PDF_PAGE_MAX
from finops.tokens.step import _fallback_estimate

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def bound(kwargs: dict[str, object], wire: str = "openai") -> int:
    return _fallback_estimate(PriceBook.default(), wire, kwargs, NOW).input_tokens


def test_plain_text_is_bytes() -> None:
    text = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    assert 64 < bound(text) < 200


def test_images_by_url_get_the_documented_maximum() -> None:
    url = "https://example.com/cat.png"
    openai_chat = {
        "model": "gpt-4o",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": url}},
                    {"type": "image_url", "image_url": {"url": url}},
                ],
            }
        ],
    }
    assert bound(openai_chat) >= 2 * 6_000
    claude = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 10,
        "messages": [
            {
                "role": "user",
                "content": [{"type": "image", "source": {"type": "url", "url": url}}],
            }
        ],
    }
    assert bound(claude, "anthropic") >= 6_000
    responses = {"model": "gpt-4.1", "input": [{"role": "user", "content": [
        {"type": "input_image", "image_url": url}]}]}
    assert bound(responses) >= 6_000


def test_documents_by_reference_get_a_hundred_pages() -> None:
    claude = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 10,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "document", "source": {"type": "url", "url": "https://x/y.pdf"}}
                ],
            }
        ],
    }
    assert bound(claude, "anthropic") >= 100 * PDF_PAGE_MAX
