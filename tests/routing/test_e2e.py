"""Routing through the real SDKs against finops.DevServer: what leaves the process carries the
target model and translated parameters; shadow mode leaves the request untouched."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anthropic
import openai
import pytest
from openai.types.chat import ChatCompletion

import finops
from finops.devserver import DevServer
from finops.routing.model import RouterModel
from finops.routing.step import RouteStep
from finops_testing import rows

ROUTES = [
    finops.Route(source="o3", targets=[finops.RouteTarget(model="gpt-4.1-mini")]),
    finops.Route(source="o1", targets=[finops.RouteTarget(model="o1-mini")]),
    finops.Route(source="gpt-5", targets=[finops.RouteTarget(reasoning_effort="minimal")]),
    finops.Route(source="claude-opus-4-1",
                 targets=[finops.RouteTarget(model="claude-sonnet-4-5", thinking="off")]),
]
Q = [{"role": "user", "content": "What is the capital of France?"}]


def _fo(path: Path, **routing: object) -> finops.FinOps:
    # strong_share=0: nothing has to stay on the requested model, so every servable request
    # is routed whatever its score (decisions independent of the shipped weights)
    cfg = finops.Routing(routes=ROUTES, **{"strong_share": 0.0, **routing})  # type: ignore[arg-type]
    return finops.FinOps(ledger=path, routing=cfg)


@pytest.fixture()
def fo_route(tmp_path: Path) -> Iterator[finops.FinOps]:
    f = _fo(tmp_path / "l.duckdb")
    yield f
    f.close()


def _oai(fo: finops.FinOps, server: DevServer) -> openai.OpenAI:
    return fo.wrap(openai.OpenAI(api_key="sk-test", base_url=server.openai_base_url))


def test_route_rewrites_the_request_that_leaves(fo_route: finops.FinOps,
                                                 devserver: DevServer) -> None:
    client = _oai(fo_route, devserver)
    resp = client.chat.completions.create(model="o3", messages=Q, max_completion_tokens=50,
                                          reasoning_effort="high")  # type: ignore[arg-type]
    assert isinstance(resp, ChatCompletion)
    sent = devserver.requests[-1].body
    assert sent["model"] == "gpt-4.1-mini"
    assert "reasoning_effort" not in sent and sent["max_completion_tokens"] == 50
    assert fo_route.steps.index("route") < fo_route.steps.index("estimate")
    (row,) = rows(fo_route)
    assert row["requested_model"] == "o3"
    assert str(row["served_model"]).startswith("gpt-4.1-mini")
    assert str(row["route_decision"]).startswith("route:score<threshold->gpt-4.1-mini")
    assert "reasoning_effort" in str(row["route_decision"])  # dropped params are recorded
    assert row["route_score"] is not None and row["route_cpu_us"] > 0  # type: ignore[operator]
    assert str(row["route_policy"]).startswith("default@")
    assert row["counterfactual_estimated"] is True
    assert row["counterfactual_cost"] > row["cost_total"] > 0  # type: ignore[operator]
    saved = fo_route.ledger.query("SELECT cause, saved, estimated FROM savings_by_cause")
    assert saved[0][0] == "routing" and saved[0][1] > 0 and saved[0][2] is True


def test_reasoning_effort_route_and_stream(fo_route: finops.FinOps,
                                           devserver: DevServer) -> None:
    client = _oai(fo_route, devserver)
    stream = client.chat.completions.create(model="gpt-5", messages=Q, stream=True,
                                            temperature=0.5)  # type: ignore[arg-type]
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text
    sent = devserver.requests[-1].body
    assert sent["model"] == "gpt-5" and sent["reasoning_effort"] == "minimal"
    assert "temperature" not in sent  # reasoning models reject it
    (row,) = rows(fo_route)
    assert "gpt-5@minimal" in str(row["route_decision"])


def test_anthropic_opus_to_sonnet_without_thinking(fo_route: finops.FinOps,
                                                  devserver: DevServer) -> None:
    client = fo_route.wrap(anthropic.Anthropic(api_key="sk-ant-test",
                                               base_url=devserver.anthropic_base_url))
    msg = client.messages.create(model="claude-opus-4-1", max_tokens=4000, messages=Q,  # type: ignore[arg-type]
                                 thinking={"type": "enabled", "budget_tokens": 2000})
    assert isinstance(msg, anthropic.types.Message)
    sent = devserver.requests[-1].body
    assert sent["model"] == "claude-sonnet-4-5" and "thinking" not in sent
    (row,) = rows(fo_route)
    assert row["requested_model"] == "claude-opus-4-1"
    assert row["counterfactual_cost"] > row["cost_total"]  # type: ignore[operator]


def test_shadow_mode_leaves_the_request_untouched(tmp_path: Path, devserver: DevServer) -> None:
    fo = _fo(tmp_path / "s.duckdb", mode="shadow")
    try:
        resp = _oai(fo, devserver).chat.completions.create(model="o3", messages=Q)  # type: ignore[arg-type]
        assert isinstance(resp, ChatCompletion)
        assert devserver.requests[-1].body["model"] == "o3"
        (row,) = rows(fo)
        assert str(row["route_decision"]).startswith("shadow_route:score<threshold->gpt-4.1-mini")
        assert row["requested_model"] == "o3" and str(row["served_model"]).startswith("o3")
        assert row["route_score"] is not None
        assert row["counterfactual_cost"] == row["cost_total"]  # nothing saved, nothing claimed
    finally:
        fo.close()


def test_opt_out_per_call_and_scope_by_tag(tmp_path: Path, devserver: DevServer) -> None:
    fo = _fo(tmp_path / "o.duckdb",
             scopes=[finops.RoutingScope(tag="team", value="research", mode="off")])
    try:
        client = _oai(fo, devserver)
        client.chat.completions.create(model="o3", messages=Q, finops_route=False)  # type: ignore[call-overload]
        assert devserver.requests[-1].body["model"] == "o3"
        with finops.tags(team="research"):
            client.chat.completions.create(model="o3", messages=Q)  # type: ignore[arg-type]
        assert devserver.requests[-1].body["model"] == "o3"
        client.chat.completions.create(model="o3", messages=Q)  # type: ignore[arg-type]
        assert devserver.requests[-1].body["model"] == "gpt-4.1-mini"
        decisions = [str(r["route_decision"]).split(":")[0] for r in rows(fo)]
        assert decisions == ["opt_out", "off", "route"]
    finally:
        fo.close()


def test_tools_request_is_never_routed_to_a_model_without_tools(
    fo_route: finops.FinOps, devserver: DevServer
) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    _oai(fo_route, devserver).chat.completions.create(model="o1", messages=Q, tools=tools)  # type: ignore[arg-type]
    assert devserver.requests[-1].body["model"] == "o1"
    (row,) = rows(fo_route)
    assert row["route_decision"] == "no_route:cannot_serve:tools"


def test_hard_prompt_stays_on_the_requested_model(tmp_path: Path,
                                                  devserver: DevServer) -> None:
    step = RouteStep(finops.Routing(routes=ROUTES), model=RouterModel.constant(0.9))
    fo = finops.FinOps(ledger=tmp_path / "h.duckdb", steps=[step])
    try:
        _oai(fo, devserver).chat.completions.create(model="o3", messages=Q)  # type: ignore[arg-type]
        assert devserver.requests[-1].body["model"] == "o3"
        (row,) = rows(fo)
        assert str(row["route_decision"]).startswith("keep:")
        assert row["counterfactual_estimated"] is None
    finally:
        fo.close()


async def test_async_client_is_routed(fo_route: finops.FinOps, devserver: DevServer) -> None:
    client = fo_route.wrap(openai.AsyncOpenAI(api_key="sk-test",
                                              base_url=devserver.openai_base_url))
    resp = await client.chat.completions.create(model="o3", messages=Q)  # type: ignore[arg-type]
    assert isinstance(resp, ChatCompletion)
    assert devserver.requests[-1].body["model"] == "gpt-4.1-mini"


def test_responses_api_drops_reasoning_for_a_plain_model(fo_route: finops.FinOps,
                                                        devserver: DevServer) -> None:
    resp = _oai(fo_route, devserver).responses.create(
        model="o3", input="What is the capital of France?", reasoning={"effort": "high"})
    assert resp.output_text
    sent = devserver.requests[-1].body
    assert sent["model"] == "gpt-4.1-mini" and "reasoning" not in sent


def test_anthropic_stream_manager_is_routed(fo_route: finops.FinOps,
                                            devserver: DevServer) -> None:
    client = fo_route.wrap(anthropic.Anthropic(api_key="sk-ant-test",
                                               base_url=devserver.anthropic_base_url))
    with client.messages.stream(model="claude-opus-4-1", max_tokens=300,
                                messages=Q) as stream:  # type: ignore[arg-type]
        text = "".join(stream.text_stream)
    assert text
    assert devserver.requests[-1].body["model"] == "claude-sonnet-4-5"
    (row,) = rows(fo_route)
    assert row["requested_model"] == "claude-opus-4-1" and row["stream"] is True
