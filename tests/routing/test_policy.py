"""Routing decisions: threshold from a stated target, targets, scopes, opt-out, shadow, and
never a route the target cannot serve (tools, image, JSON schema, long context)."""

from __future__ import annotations

import pytest

import finops
from finops.pricing import PriceBook
from finops.routing.config import load_routing
from finops.routing.model import RouterModel
from finops.routing.policy import Router, prompt_text
from finops.routing.step import _BookLimits

EASY, HARD = -0.9, 0.9


def _router(score: float, **kw: object) -> Router:
    routes = kw.pop("routes", None) or [
        finops.Route(source="o3", targets=[finops.RouteTarget(model="gpt-4.1-mini")]),
        finops.Route(source="gpt-5", targets=[finops.RouteTarget(reasoning_effort="minimal")]),
        finops.Route(source="o1", targets=[finops.RouteTarget(model="o1-mini")]),
        finops.Route(source="gpt-4o", targets=[finops.RouteTarget(model="gpt-3.5-turbo")]),
        finops.Route(source="gpt-4.1", targets=[finops.RouteTarget(model="gpt-4")]),
    ]
    config = finops.Routing(routes=routes, **kw)  # type: ignore[arg-type]
    book = PriceBook.default()
    return Router(config=config, model=RouterModel.constant(score), limits=_BookLimits(lambda: book))


def _chat(model: str, text: str = "What is 2 + 2?", **extra: object) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def test_threshold_comes_from_the_stated_quality_target() -> None:
    r = _router(EASY)
    # constant_model: 95 % of quality at cost share 0.75 -> threshold at index 75
    assert r.threshold(0.95, None) == pytest.approx(r.model.curve_threshold[75])
    assert r.threshold(0.90, None) > r.threshold(0.95, None)  # easier target, more routed
    assert r.threshold(None, 0.0) == float("inf")  # nothing may stay: everything routes


def test_easy_prompt_is_routed_hard_one_kept() -> None:
    easy = _router(EASY).decide(endpoint="chat.completions", kwargs=_chat("o3"))
    assert easy is not None and easy.routed and easy.served_model == "gpt-4.1-mini"
    assert easy.kwargs is not None and easy.kwargs["model"] == "gpt-4.1-mini"
    assert easy.cpu_us > 0 and easy.policy.startswith("default@const")
    hard = _router(HARD).decide(endpoint="chat.completions", kwargs=_chat("o3"))
    assert hard is not None and hard.action == "keep" and hard.kwargs is None


def test_unrouted_model_and_embeddings_are_ignored() -> None:
    r = _router(EASY)
    assert r.decide(endpoint="chat.completions", kwargs=_chat("claude-3-haiku")) is None
    assert r.decide(endpoint="embeddings", kwargs={"model": "o3", "input": "x"}) is None


def test_effort_only_target_keeps_the_model() -> None:
    d = _router(EASY).decide(endpoint="chat.completions", kwargs=_chat("gpt-5"))
    assert d is not None and d.routed and d.served_model == "gpt-5"
    assert d.kwargs is not None and d.kwargs["reasoning_effort"] == "minimal"
    assert d.target == "gpt-5@minimal"


def test_opt_out_and_shadow_and_off() -> None:
    d = _router(EASY).decide(endpoint="chat.completions", kwargs=_chat("o3"), opt_out=True)
    assert d is not None and d.action == "opt_out" and d.score is None
    shadow = _router(EASY, mode="shadow").decide(endpoint="chat.completions", kwargs=_chat("o3"))
    assert shadow is not None and shadow.action == "shadow_route" and shadow.kwargs is None
    assert shadow.served_model == "gpt-4.1-mini"  # what it would have done
    off = _router(EASY, mode="off").decide(endpoint="chat.completions", kwargs=_chat("o3"))
    assert off is not None and off.action == "off"


def test_scope_by_tag_overrides_mode() -> None:
    r = _router(EASY, scopes=[finops.RoutingScope(tag="team", value="research", mode="off"),
                              finops.RoutingScope(tag="team", value="ops", mode="shadow")])
    assert r.decide(endpoint="chat.completions", kwargs=_chat("o3"),
                    tags={"team": "research"}).action == "off"  # type: ignore[union-attr]
    assert r.decide(endpoint="chat.completions", kwargs=_chat("o3"),
                    tags={"team": "ops"}).action == "shadow_route"  # type: ignore[union-attr]
    assert r.decide(endpoint="chat.completions", kwargs=_chat("o3"),
                    tags={"team": "web"}).action == "route"  # type: ignore[union-attr]


def test_never_routes_tools_to_a_model_without_tools() -> None:
    kw = _chat("o1", tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}])
    d = _router(EASY).decide(endpoint="chat.completions", kwargs=kw)
    assert d is not None and not d.routed and d.reason == "cannot_serve:tools"


def test_never_routes_image_input_to_a_text_only_model() -> None:
    msg = {"role": "user", "content": [
        {"type": "text", "text": "describe"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}
    r = _router(EASY, routes=[finops.Route(source="o3",
                                           targets=[finops.RouteTarget(model="o3-mini")])])
    d = r.decide(endpoint="chat.completions", kwargs={"model": "o3", "messages": [msg]})
    assert d is not None and not d.routed and d.reason == "cannot_serve:image_input"


def test_never_routes_json_schema_to_a_model_without_structured_output() -> None:
    rf = {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}}}
    d = _router(EASY).decide(endpoint="chat.completions", kwargs=_chat("gpt-4o",
                                                                     response_format=rf))
    assert d is not None and not d.routed and d.reason == "cannot_serve:json_schema"


def test_never_routes_a_long_context_to_a_small_window() -> None:
    long_text = "word " * 20000  # ~100 kB: beyond gpt-4's 8k-token window
    d = _router(EASY).decide(endpoint="chat.completions", kwargs=_chat("gpt-4.1", long_text))
    assert d is not None and not d.routed and d.reason == "cannot_serve:context_length"
    short = _router(EASY).decide(endpoint="chat.completions", kwargs=_chat("gpt-4.1"))
    assert short is not None and short.routed


def test_never_routes_beyond_the_targets_max_output() -> None:
    d = _router(EASY).decide(endpoint="chat.completions",
                             kwargs=_chat("gpt-4.1", max_tokens=6000))
    assert d is not None and d.routed  # gpt-4 has 8192 output
    d = _router(EASY).decide(endpoint="chat.completions",
                             kwargs=_chat("gpt-4.1", max_tokens=9000))
    assert d is not None and not d.routed and "cannot_serve" in d.reason


def test_ladder_falls_back_to_a_target_that_can_serve() -> None:
    routes = [finops.Route(source="o3", targets=[
        finops.RouteTarget(model="gpt-4.1-mini"),
        finops.RouteTarget(model="o1-mini", keep_quality=0.90),
    ])]
    easy = _router(EASY, routes=routes).decide(endpoint="chat.completions", kwargs=_chat("o3"))
    assert easy is not None and easy.served_model == "o1-mini"  # the most aggressive rung
    tools = _chat("o3", tools=[{"type": "function", "function": {"name": "f"}}])
    fallback = _router(EASY, routes=routes).decide(endpoint="chat.completions", kwargs=tools)
    assert fallback is not None and fallback.served_model == "gpt-4.1-mini"


def test_cross_provider_target_is_not_taken() -> None:
    routes = [finops.Route(source="o3", targets=[finops.RouteTarget(model="claude-haiku-4-5")])]
    d = _router(EASY, routes=routes).decide(endpoint="chat.completions", kwargs=_chat("o3"))
    assert d is not None and not d.routed and d.reason == "cannot_serve:cross_provider"


def test_prompt_text_is_the_last_user_turn() -> None:
    kw = {"messages": [{"role": "system", "content": "be brief"},
                       {"role": "user", "content": [{"type": "text", "text": "first"}]},
                       {"role": "assistant", "content": "ok"},
                       {"role": "user", "content": "second"}]}
    assert prompt_text("chat.completions", kw) == "second"
    assert prompt_text("responses", {"input": "plain"}) == "plain"


def test_config_errors_and_toml_loader() -> None:
    with pytest.raises(finops.ConfigError):
        finops.Routing(routes=[finops.Route(source="o3", targets=[finops.RouteTarget(
            model="x")])], keep_quality=1.5)
    with pytest.raises(finops.ConfigError):
        finops.RouteTarget()
    with pytest.raises(finops.ConfigError):
        load_routing({"routes": [{"source": "o3", "targets": [{"model": "a"}]}], "bogus": 1})
    cfg = load_routing({"mode": "shadow", "model_path": "m",
                        "routes": [{"source": "o3", "targets": [{"model": "gpt-4.1-mini"}]}]},
                       base_dir="/tmp")
    assert cfg.mode == "shadow" and cfg.model_path == "/tmp/m"
