"""The call path as composed steps (issue 9): composition, the protocol, the per-call cap."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import openai
import pytest

import finops
from finops.devserver import DevServer
from finops.devserver.faults import Fault
from finops.pipeline import Call, Outcome, Served, Step
from finops_testing import rows

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hi"}]}


def client(fo: finops.FinOps, server: DevServer) -> openai.OpenAI:
    return fo.wrap(
        openai.OpenAI(api_key="sk-test", base_url=server.openai_base_url, max_retries=0)
    )


def test_composition_follows_the_configuration(tmp_path: Path) -> None:
    with finops.FinOps(ledger=tmp_path / "a.duckdb") as fo:
        assert fo.steps == ["stream_usage", "estimate", "call_cost_cap"]
    with finops.FinOps(ledger=tmp_path / "b.duckdb", estimate="off") as fo:
        assert fo.steps == ["stream_usage", "call_cost_cap"]
    with finops.FinOps(
        ledger=tmp_path / "c.duckdb",
        unknown_model="raise",
        estimate="off",  # a budget needs an estimate all the same
        budgets=[finops.Budget(limit="1.00", period="day")],
    ) as fo:
        assert fo.steps == [
            "stream_usage",
            "unknown_model_guard",
            "estimate",
            "call_cost_cap",
            "budget",
        ]


# -- the per-call cost cap: a step added by its own module and one line of composition ------


def test_per_call_cap_refuses_before_the_network(
    tmp_path: Path, devserver: DevServer
) -> None:
    with finops.FinOps(ledger=tmp_path / "l.duckdb") as fo:
        c = client(fo, devserver)
        with pytest.raises(finops.CallCostExceeded) as info:
            c.chat.completions.create(
                **{**CHAT, "model": "gpt-4o"}, max_tokens=16_000, finops_max_cost="0.01"
            )
        assert devserver.requests == []
        err = info.value
        assert isinstance(err, finops.BudgetExceeded)
        assert err.limit == Decimal("0.01") and err.requested > Decimal("0.01")
        assert "finops_max_cost" in str(err) and "not sent" in str(err)
        # under the cap it goes through, and the cap leaves no trace on the row
        reply = c.chat.completions.create(**CHAT, max_tokens=50, finops_max_cost="0.01")
        assert reply.choices[0].message.content
        assert len(devserver.requests) == 1
        recorded = rows(fo)
    blocked = [r for r in recorded if r["status"] == "blocked"]
    assert len(blocked) == 1 and blocked[0]["error_type"] == "CallCostExceeded"
    assert blocked[0]["cost_total"] == 0 and blocked[0]["counterfactual_cost"] > Decimal("0.01")
    assert blocked[0]["est_output_tokens_max"] == 16_000
    assert [r["status"] for r in recorded if r["status"] != "blocked"] == ["ok"]


def test_default_cap_and_per_call_override(tmp_path: Path, devserver: DevServer) -> None:
    with finops.FinOps(ledger=tmp_path / "l.duckdb", max_call_cost="0.0001", estimate="off") as fo:
        c = client(fo, devserver)
        with pytest.raises(finops.CallCostExceeded):
            c.chat.completions.create(**{**CHAT, "model": "gpt-4o"}, max_tokens=4000)
        reply = c.chat.completions.create(
            **{**CHAT, "model": "gpt-4o"}, max_tokens=4000, finops_max_cost=Decimal("1")
        )
        assert reply.usage is not None
    assert len(devserver.requests) == 1


@pytest.mark.parametrize("bad", [0.05, "five cents", "-1", True])
def test_a_cap_that_is_not_money_is_refused(tmp_path: Path, devserver: DevServer, bad: object) -> None:
    with pytest.raises(finops.ConfigError):
        finops.FinOps(ledger=tmp_path / "x.duckdb", max_call_cost=bad)  # type: ignore[arg-type]
    with finops.FinOps(ledger=tmp_path / "l.duckdb") as fo, pytest.raises(finops.ConfigError):
        client(fo, devserver).chat.completions.create(**CHAT, finops_max_cost=bad)
    assert devserver.requests == []


def test_an_unknown_finops_option_is_refused_before_sending(
    fo: finops.FinOps, devserver: DevServer
) -> None:
    with pytest.raises(finops.ConfigError, match="finops_max_cots"):
        client(fo, devserver).chat.completions.create(**CHAT, finops_max_cots="0.1")
    assert devserver.requests == []


# -- the protocol, through user steps ---------------------------------------------------------


class Recorder(Step):
    name = "recorder"

    def __init__(self, *, capture: bool = False) -> None:
        self.capture = capture
        self.rows: list[str] = []
        self.outcomes: list[Outcome] = []

    def before(self, call: Call) -> Served | None:
        call.capture = self.capture
        call.row["route_decision"] = "recorder-was-here"
        return None

    def on_row(self, call: Call, row: finops.LedgerRow) -> None:
        self.rows.append(row.status)

    def after(self, call: Call, outcome: Outcome) -> None:
        self.outcomes.append(outcome)


class Answer(Step):
    """Serves every call with a fixed answer (what a cache hit does)."""

    name = "answer"

    def __init__(self, body: bytes, content_type: str) -> None:
        self.body = body
        self.content_type = content_type

    def before(self, call: Call) -> Served | None:
        return Served(body=self.body, headers={"content-type": self.content_type})

    def on_row(self, call: Call, row: finops.LedgerRow) -> None:
        row.status = "cache_hit"
        row.counterfactual_cost, row.cost_total = row.cost_total, Decimal(0)


def chat_json(text: str) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-served",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
        }
    ).encode()


def chat_sse(words: list[str]) -> bytes:
    def chunk(delta: dict[str, object], finish: str | None = None, usage: object = None) -> bytes:
        body = {
            "id": "chatcmpl-served",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        if usage:
            body["usage"] = usage
        return b"data: " + json.dumps(body).encode() + b"\n\n"

    out = [chunk({"role": "assistant", "content": ""})]
    out += [chunk({"content": w}) for w in words]
    out.append(chunk({}, "stop"))
    out.append(chunk({}, usage={"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}))
    return b"".join(out) + b"data: [DONE]\n\n"


def test_a_served_answer_reaches_the_sdk_without_a_request(
    tmp_path: Path, devserver: DevServer
) -> None:
    recorder = Recorder()
    answer = Answer(chat_json("from the step"), "application/json")
    late = Recorder()
    with finops.FinOps(ledger=tmp_path / "l.duckdb", steps=[recorder, answer, late]) as fo:
        assert fo.steps.index("answer") < fo.steps.index("estimate")
        reply = client(fo, devserver).chat.completions.create(**CHAT)
        assert isinstance(reply, openai.types.chat.ChatCompletion)
        assert reply.choices[0].message.content == "from the step"
        [row] = rows(fo)
    assert devserver.requests == []
    assert row["status"] == "cache_hit" and row["cost_total"] == 0
    assert row["counterfactual_cost"] > 0 and row["input_tokens"] == 9
    assert row["route_decision"] == "recorder-was-here"
    assert row["est_input_tokens"] is None  # the estimate step did not run after a serve
    assert recorder.rows == ["cache_hit"] and recorder.outcomes[0].complete
    assert late.rows == [] and late.outcomes == []  # steps after the server never ran


def test_a_served_stream_replays_as_a_real_stream(tmp_path: Path, devserver: DevServer) -> None:
    answer = Answer(chat_sse(["Hel", "lo", "!"]), "text/event-stream")
    with finops.FinOps(ledger=tmp_path / "l.duckdb", steps=[answer]) as fo:
        stream = client(fo, devserver).chat.completions.create(**CHAT, stream=True)
        chunks = list(stream)
        [row] = rows(fo)
    # the caller did not ask for usage: the injected usage chunk is hidden, as for a real call
    assert all(c.choices for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Hello!"
    assert devserver.requests == []
    assert row["status"] == "cache_hit" and row["output_tokens"] == 3 and row["stream"]


@pytest.mark.parametrize("stream", [False, True])
def test_capture_hands_the_raw_answer_to_after(
    tmp_path: Path, devserver: DevServer, stream: bool
) -> None:
    recorder = Recorder(capture=True)
    with finops.FinOps(ledger=tmp_path / "l.duckdb", steps=[recorder]) as fo:
        result = client(fo, devserver).chat.completions.create(**CHAT, stream=stream)
        if stream:
            list(result)  # type: ignore[arg-type]
    [outcome] = recorder.outcomes
    assert outcome.complete and outcome.status == "ok" and outcome.http_status == 200
    assert outcome.body is not None and outcome.cost > 0 and outcome.tokens > 0
    if stream:
        assert outcome.content_type and "event-stream" in outcome.content_type
        assert b'"usage"' in outcome.body and outcome.body.rstrip().endswith(b"[DONE]")
    else:
        assert json.loads(outcome.body)["usage"]["total_tokens"] == outcome.tokens


def test_a_refusal_lets_earlier_steps_undo(tmp_path: Path, devserver: DevServer) -> None:
    class Refuse(Step):
        name = "refuse"

        def before(self, call: Call) -> Served | None:
            raise finops.ConfigError("refused by a test step")

    recorder = Recorder()
    with (
        finops.FinOps(ledger=tmp_path / "l.duckdb", steps=[recorder, Refuse()]) as fo,
        pytest.raises(finops.ConfigError, match="refused by a test step"),
    ):
        client(fo, devserver).chat.completions.create(**CHAT)
    assert devserver.requests == []
    [outcome] = recorder.outcomes
    assert outcome.status is None and not outcome.complete and outcome.cost == 0


def test_an_error_answer_is_not_complete(tmp_path: Path, devserver: DevServer) -> None:
    recorder = Recorder(capture=True)
    devserver.inject(Fault.status(500), times=1)
    with (
        finops.FinOps(ledger=tmp_path / "l.duckdb", steps=[recorder]) as fo,
        pytest.raises(openai.InternalServerError),
    ):
        client(fo, devserver).chat.completions.create(**CHAT)
    [outcome] = recorder.outcomes
    assert not outcome.complete and outcome.status == "error" and outcome.http_status == 500
