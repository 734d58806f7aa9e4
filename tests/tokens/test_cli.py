"""``finops tokens`` and ``finops estimate`` on a Typer app of their own."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from finops.cli.tokens import guess_endpoint, register


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_tokens_command() -> None:
    result = CliRunner().invoke(_app(), ["tokens", "hello world", "--model", "gpt-4"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("2 tokens") and "cl100k_base" in result.output
    unknown = CliRunner().invoke(_app(), ["tokens", "hello", "--model", "acme-1"])
    assert unknown.exit_code == 0 and "fallback" in unknown.output


def test_estimate_command(tmp_path: Path) -> None:
    request = tmp_path / "request.json"
    request.write_text(
        json.dumps(
            {
                "model": "gpt-4o",
                "max_tokens": 100,
                "messages": [{"role": "user", "content": "Hello there"}],
            }
        )
    )
    result = CliRunner().invoke(_app(), ["estimate", str(request)])
    assert result.exit_code == 0, result.output
    assert "9 (exact)" in result.output and "$" in result.output and "100" in result.output
    body = {
        "model": "claude-haiku-4-5",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
    }
    result = CliRunner().invoke(_app(), ["estimate", "-", "--bound"], input=json.dumps(body))
    assert result.exit_code == 0, result.output
    assert "bound:utf8-bytes:messages" in result.output
    bad = CliRunner().invoke(_app(), ["estimate", str(tmp_path / "missing.json")])
    assert bad.exit_code != 0


def test_guess_endpoint() -> None:
    assert guess_endpoint({"model": "claude-x", "messages": []}) == ("anthropic", "messages")
    assert guess_endpoint({"model": "gpt-4o", "messages": []}) == ("openai", "chat.completions")
    assert guess_endpoint({"model": "text-embedding-3-small", "input": "x"}) == (
        "openai",
        "embeddings",
    )
    assert guess_endpoint({"model": "gpt-5", "input": "x"}) == ("openai", "responses")


def test_explain_breaks_the_estimate_into_parts(tmp_path: Path) -> None:
    from finops.tokens import estimate_request
    from finops.tokens.explain import explain_request

    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "system": "You are terse.",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {
                        "type": "image",
                        "source": {"type": "url", "url": "https://example.invalid/a.png"},
                    },
                ],
            },
            {"role": "assistant", "content": "A cat."},
            {"role": "user", "content": "Weather in Paris?"},
        ],
        "tools": [{"name": "w", "description": "Weather", "input_schema": {"type": "object"}}],
        "thinking": {"type": "enabled", "budget_tokens": 2000},
        "output_config": {"task_budget": {"type": "tokens", "total": 5000}},
    }
    est, parts = explain_request(provider="anthropic", endpoint="messages", body=body)
    assert est == estimate_request(provider="anthropic", endpoint="messages", body=body)
    assert sum(p.tokens for p in parts) == est.input_tokens  # the parts add up exactly
    kinds = {p.kind for p in parts}
    assert {"framing", "system", "message", "tools", "media", "provider-added"} <= kinds
    labels = " ".join(p.label for p in parts)
    assert "tool-use system prompt" in labels and "task budget" in labels
    path = tmp_path / "req.json"
    path.write_text(json.dumps(body))
    app = _app()
    result = CliRunner().invoke(app, ["tokens", "--explain", str(path)])
    assert result.exit_code == 0, result.output
    assert "tool-use system prompt" in result.output and "framing" in result.output
    result = CliRunner().invoke(app, ["estimate", str(path), "--explain"])
    assert result.exit_code == 0 and "messages[0] user" in result.output
