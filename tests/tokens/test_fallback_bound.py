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


def test_media_carried_inline_is_bounded_by_its_bytes_not_reserved_again() -> None:
    data_url = "data:image/png;base64," + "iVBORw0KGgo" * 10
    inline = {"model": "gpt-4o", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": data_url}}]}]}
    assert bound(inline) < 1_000
    claude = {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [{"role": "user",
              "content": [{"type": "image", "source": {"type": "base64", "data": "AAAA"}},
                          {"type": "document", "source": {"type": "text", "data": "hi"}}]}]}
    assert bound(claude, "anthropic") < 1_000
    # Text that only talks about a part type is text.
    talk = {"model": "gpt-4o", "messages": [{"role": "user", "content":
            'what does {"type": "image_url"} or "file_id" mean?'}]}
    assert bound(talk) < 1_000


def test_inline_pdf_pages_and_other_wires() -> None:
    import base64

    pdf = b"%PDF-1.4\n" + b"<< /Type /Page >>\n" * 3 + b"<< /Type /Pages >>\n"
    part = {"type": "input_file", "file_data": "data:application/pdf;base64,"
            + base64.b64encode(pdf).decode(), "filename": "a.pdf"}
    responses = {"model": "gpt-4.1", "input": [{"role": "user", "content": [part]}]}
    n = bound(responses)
    assert 3 * PDF_PAGE_MAX <= n < 4 * PDF_PAGE_MAX
    by_id = {"model": "gpt-4.1", "input": [{"role": "user", "content": [
        {"type": "input_file", "file_id": "file-abc"}]}]}
    assert bound(by_id) >= 100 * PDF_PAGE_MAX
    gemini = {"model": "gemini-2.5-flash", "contents": [{"role": "user", "parts": [
        {"file_data": {"file_uri": "gs://b/x.pdf", "mime_type": "application/pdf"}}]}]}
    assert bound(gemini, "gemini") >= 100 * PDF_PAGE_MAX
    bedrock = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": [
        {"image": {"format": "png", "source": {"s3Location": {"uri": "s3://b/x.png"}}}},
        {"image": {"format": "png", "source": {"bytes": b"\x89PNG"}}}]}]}
    assert 6_000 <= bound(bedrock, "bedrock") < 12_000
