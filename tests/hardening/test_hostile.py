"""Hostile input (hypothesis): provider bodies and SSE streams cut, garbled or carrying
garbage usage; random SDK keyword arguments; odd tags. The wrapped client must behave
exactly like the raw SDK, and every attempt must leave exactly one ledger row, flagged when
its usage is not believable."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hostile_testing import CASES, Body, Case, map_sse_json, outcome, replying, sdk_client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import finops
from finops.providers.base import MAX_TOKENS

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
CASE_NAMES = sorted(CASES)
STREAMS = [n for n in CASE_NAMES if CASES[n].stream]


@pytest.fixture()
def fo(tmp_path: Path) -> Iterator[finops.FinOps]:
    f = finops.FinOps(ledger=tmp_path / "hostile.duckdb")
    yield f
    f.close()


class Runner:
    """Runs one case raw and wrapped; remembers what each wrapped row must look like."""

    def __init__(self, fo: finops.FinOps) -> None:
        self.fo = fo
        self.seq = 0
        self.expect: dict[str, dict[str, Any]] = {}

    def run(self, case: Case, body: Body, *, status: int = 200, **expect: Any) -> tuple[str, Any]:
        handler = replying(body, status)
        raw = outcome(sdk_client(case, handler), case)
        self.seq += 1
        label = str(self.seq)
        wrapped = outcome(self.fo.wrap(sdk_client(case, handler)), case, finops_tags={"ex": label})
        assert wrapped == raw, (
            f"{case.name}: raw {raw!r} != wrapped {wrapped!r} on {body.data[:300]!r}"
        )
        self.expect[label] = {"case": case.name, "body": body.data[:200], **expect}
        return raw

    def check_rows(self) -> list[dict[str, Any]]:
        assert self.fo.flush(timeout_s=30)
        result = self.fo.ledger.query(
            "SELECT tags['ex'], status, usage_mismatch, cost_total, pricing_status, "
            "input_tokens, output_tokens FROM calls"
        )
        by_label: dict[str, list[tuple[Any, ...]]] = {}
        for row in result:
            by_label.setdefault(row[0], []).append(row)
        assert set(by_label) == set(self.expect), "a row is missing or extra"
        out = []
        for label, want in self.expect.items():
            rows = by_label[label]
            assert len(rows) == 1, f"{want}: {len(rows)} rows for one attempt"
            _, status, mismatch, cost, _pricing, _in, _out = rows[0]
            assert status in ("ok", "error", "cancelled"), (want, rows[0])
            if cost is not None:  # never trillions from garbage counts
                assert Decimal(cost) <= Decimal(100_000), (want, rows[0])
            if want.get("ok_call"):  # the caller got a normal answer: so does the row
                assert status == "ok", (want, rows[0])
            if want.get("invalid"):
                assert status != "ok" or (mismatch and "invalid usage" in mismatch), (want, rows[0])
                if status == "ok" and cost is not None:
                    assert _pricing == "invalid_usage", (want, rows[0])
            if want.get("valid_usage") and status == "ok":
                assert not mismatch or "invalid usage" not in mismatch, (want, rows[0])
            out.append({"want": want, "row": rows[0]})
        return out


# -- streams cut anywhere ------------------------------------------------------------------


def test_stream_cut_mid_event_behaves_like_raw_sdk(
    fo: finops.FinOps, bodies: dict[str, Body]
) -> None:
    """The issue's case: a stream cut inside an event. Raw SDK: drops it, ends normally."""
    runner = Runner(fo)
    for name in STREAMS:
        data = bodies[name].data
        last = data.rstrip(b"\n").rfind(b"\n\n")
        for cut in (last + 10, last + 30, len(data) - 5, len(data) // 2 + 3):
            body = Body(bodies[name].content_type, data[:cut])
            kind, _ = runner.run(CASES[name], body)
            assert kind == "ok", f"{name} cut at {cut}: the raw SDK ends normally"
    runner.check_rows()


def test_bodies_cut_anywhere(fo: finops.FinOps, bodies: dict[str, Body]) -> None:
    runner = Runner(fo)

    @SETTINGS
    @given(name=st.sampled_from(CASE_NAMES), frac=st.floats(0, 1))
    def run(name: str, frac: float) -> None:
        data = bodies[name].data
        runner.run(CASES[name], Body(bodies[name].content_type, data[: int(len(data) * frac)]))

    run()
    runner.check_rows()


def test_bodies_with_garbage_bytes(fo: finops.FinOps, bodies: dict[str, Body]) -> None:
    runner = Runner(fo)

    @SETTINGS
    @given(
        name=st.sampled_from(CASE_NAMES),
        at=st.floats(0, 1),
        junk=st.binary(min_size=1, max_size=40),
        drop=st.integers(0, 40),
        status=st.sampled_from([200, 200, 200, 400, 500]),
    )
    def run(name: str, at: float, junk: bytes, drop: int, status: int) -> None:
        data = bodies[name].data
        i = int(len(data) * at)
        runner.run(
            CASES[name],
            Body(bodies[name].content_type, data[:i] + junk + data[i + drop :]),
            status=status,
        )

    run()
    runner.check_rows()


# -- garbage usage -------------------------------------------------------------------------

GARBAGE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.integers(0, 5000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.lists(st.integers(0, 9), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(0, 9), max_size=2),
)

# where each case's usage lives, and which counts the adapter reads ("*": required)
USAGE_FIELDS: dict[str, list[str]] = {
    "chat": [
        "*prompt_tokens",
        "*completion_tokens",
        "total_tokens",
        "prompt_tokens_details.cached_tokens",
        "completion_tokens_details.reasoning_tokens",
    ],
    "responses": [
        "*input_tokens",
        "*output_tokens",
        "total_tokens",
        "input_tokens_details.cached_tokens",
        "output_tokens_details.reasoning_tokens",
    ],
    "embeddings": ["*prompt_tokens", "total_tokens"],
    "messages": [
        "*input_tokens",
        "*output_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
    ],
}
USAGE_FIELDS["chat_stream"] = USAGE_FIELDS["chat"]
USAGE_FIELDS["responses_stream"] = USAGE_FIELDS["responses"]
USAGE_FIELDS["messages_stream"] = ["output_tokens"]  # message_delta: null means "unchanged"


def _valid(value: Any, required: bool) -> bool:
    if value is None:
        return not required
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        if not value.is_integer():
            return False
        value = int(value)
    return isinstance(value, int) and 0 <= value <= MAX_TOKENS


def _set(usage: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node = usage
    for p in parents:
        child = node.get(p)
        if not isinstance(child, dict):
            child = node[p] = {}
        node = child
    node[leaf] = value


def _mutate(name: str, data: bytes, path: str, value: Any) -> bytes:
    if not CASES[name].stream:
        body = json.loads(data)
        _set(body["usage"], path, value)
        return json.dumps(body).encode()

    def fn(event: dict[str, Any]) -> bool:
        if name == "chat_stream" and isinstance(event.get("usage"), dict):
            _set(event["usage"], path, value)
            return True
        if name == "responses_stream" and event.get("type") == "response.completed":
            _set(event["response"]["usage"], path, value)
            return True
        if name == "messages_stream" and event.get("type") == "message_delta":
            _set(event["usage"], path, value)
            return True
        return False

    return map_sse_json(data, fn)


def test_garbage_usage_is_flagged_never_priced_silently(
    fo: finops.FinOps, bodies: dict[str, Body]
) -> None:
    runner = Runner(fo)

    @settings(SETTINGS, max_examples=120)
    @given(name=st.sampled_from(CASE_NAMES), data=st.data(), value=GARBAGE)
    def run(name: str, data: st.DataObject, value: Any) -> None:
        field = data.draw(st.sampled_from(USAGE_FIELDS[name]))
        required = field.startswith("*")
        path = field.lstrip("*")
        body = Body(bodies[name].content_type, _mutate(name, bodies[name].data, path, value))
        valid = _valid(value, required)
        kind, _ = runner.run(
            CASES[name], body, invalid=not valid, valid_usage=valid, value=value, ok_call=True
        )
        assert kind == "ok"

    run()
    rows = runner.check_rows()
    assert any(r["want"]["invalid"] for r in rows) and any(not r["want"]["invalid"] for r in rows)


@pytest.mark.parametrize(
    ("name", "path", "value"),
    [
        ("messages", "output_tokens", 10**18),
        ("messages", "input_tokens", "1200"),
        ("messages", "input_tokens", None),
        ("messages", "output_tokens", 12.5),
        ("chat", "completion_tokens", -3),
        ("messages_stream", "output_tokens", 10**18),
        ("responses_stream", "output_tokens", "many"),
    ],
)
def test_garbage_usage_examples(
    fo: finops.FinOps, bodies: dict[str, Body], name: str, path: str, value: Any
) -> None:
    runner = Runner(fo)
    runner.run(
        CASES[name],
        Body(bodies[name].content_type, _mutate(name, bodies[name].data, path, value)),
        invalid=True,
    )
    [checked] = runner.check_rows()
    _, status, mismatch, cost, _, _, _ = checked["row"]
    assert status == "ok" and mismatch and "invalid usage" in mismatch and path in mismatch
    assert cost is None or Decimal(cost) < 1


# -- random SDK keyword arguments ----------------------------------------------------------

JSONISH = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.text(max_size=8), st.floats(allow_nan=False)
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
KWARGS = [
    "model",
    "messages",
    "input",
    "max_tokens",
    "temperature",
    "stream_options",
    "tools",
    "system",
    "metadata",
    "user",
    "service_tier",
    "max_output_tokens",
]


def test_random_sdk_kwargs_same_outcome(fo: finops.FinOps, bodies: dict[str, Body]) -> None:
    """Garbage kwargs: whatever the SDK does with them (send, or raise TypeError), the
    wrapped client does the same; finops' estimate never raises into the call."""
    seen: list[tuple[str, Any]] = []

    @SETTINGS
    @given(
        name=st.sampled_from([n for n in CASE_NAMES if not CASES[n].stream]),
        extra=st.dictionaries(st.sampled_from(KWARGS), JSONISH, max_size=4),
    )
    def run(name: str, extra: dict[str, Any]) -> None:
        case = CASES[name]
        handler = replying(bodies[name])
        raw = outcome(sdk_client(case, handler), case, **extra)
        wrapped = outcome(fo.wrap(sdk_client(case, handler)), case, **extra)
        assert wrapped == raw, (extra, raw, wrapped)
        seen.append(raw)

    run()
    assert fo.flush(timeout_s=30)


# -- tags ----------------------------------------------------------------------------------

TAG_TEXT = st.one_of(
    st.text(min_size=1, max_size=30),
    st.sampled_from(
        [
            "'; DROP TABLE calls; --",
            '" OR 1=1 --',
            "a\x00b",
            "\u202e\u0000",
            "%|=&",
            "x" * 100_000,
            "😀" * 50,
            "\\",
            "NULL",
        ]
    ),
)


def test_hostile_tags_round_trip(fo: finops.FinOps, bodies: dict[str, Body]) -> None:
    """Tag keys and values (huge, unicode, NUL, SQL metacharacters) land exactly as given,
    one row each, and the ledger is intact afterwards."""
    sent: list[dict[str, str]] = []
    case = CASES["chat"]

    @SETTINGS
    @given(tags=st.dictionaries(TAG_TEXT, TAG_TEXT, min_size=1, max_size=3))
    def run(tags: dict[str, str]) -> None:
        client = fo.wrap(sdk_client(case, replying(bodies["chat"])))
        marker = str(len(sent))
        kind, _ = outcome(client, case, finops_tags={**tags, "seq": marker})
        assert kind == "ok"
        sent.append({**tags, "seq": marker})

    run()
    assert fo.flush(timeout_s=30)
    rows = fo.ledger.query("SELECT tags FROM calls")
    assert len(rows) == len(sent)
    got = sorted((dict(r[0]) for r in rows), key=lambda t: int(t["seq"]))
    assert got == sent
    # parameterized lookups find them (no SQL built from tag text)
    for tags in sent[:5]:
        key = next(iter(tags))
        n = fo.ledger.query("SELECT count(*) FROM calls WHERE tags[?] = ?", [key, tags[key]])
        assert n[0][0] >= 1
    assert fo.ledger.query("SELECT count(*) FROM calls")[0][0] == len(sent)


# -- price files, budget configs, config files ----------------------------------------------

PRICE_VALUE = st.one_of(
    st.integers(-5, 10**6),
    st.floats(allow_nan=True),
    st.text(max_size=6),
    st.none(),
    st.sampled_from(["10%", "150%", "-1", "1e400", "NaN", "0.5"]),
)
OVERRIDES = st.fixed_dictionaries(
    {},
    optional={
        "discounts": st.dictionaries(
            st.sampled_from(["openai", "anthropic/claude-*", "", "x/y/z"]), PRICE_VALUE, max_size=2
        ),
        "models": st.lists(
            st.dictionaries(
                st.sampled_from(["id", "provider", "prices", "gpu_hour", "match", "junk"]),
                st.one_of(
                    st.text(max_size=5),
                    st.dictionaries(
                        st.sampled_from(
                            [
                                "input_mtok",
                                "output_mtok",
                                "inptu_mtok",
                                "usd_per_gpu_hour",
                                "tokens_per_second",
                            ]
                        ),
                        PRICE_VALUE,
                        max_size=3,
                    ),
                ),
                max_size=4,
            ),
            max_size=2,
        ),
        "bogus": JSONISH,
    },
)


def test_random_price_overrides_config_error_or_load(tmp_path: Path) -> None:
    from finops.errors import ConfigError

    @SETTINGS
    @given(overrides=OVERRIDES, as_file=st.booleans())
    def run(overrides: dict[str, Any], as_file: bool) -> None:
        arg: Any = overrides
        if as_file:
            arg = tmp_path / "overrides.json"
            arg.write_text(json.dumps(overrides), encoding="utf-8")
        try:
            fo = finops.FinOps(ledger=tmp_path / "p.duckdb", price_overrides=arg)
        except ConfigError as exc:
            assert str(exc)
            return
        try:  # accepted: it must then price without raising
            fo.pricebook().price(
                provider=None, model="gpt-4o", usage=finops.Usage(input_tokens=10), at=fo.clock()
            )
        finally:
            fo.close()

    run()


BUDGET_VALUE = st.one_of(
    st.text(max_size=8).filter(lambda s: not s.startswith(("/", "~"))),  # no dirs outside tmp
    st.integers(-10, 10**12),
    st.floats(allow_nan=True),
    st.booleans(),
    st.none(),
    st.sampled_from(["day", "hour", "tokens", "usd", "warn", "downgrade", "UTC", "50.00"]),
    st.dictionaries(st.text(max_size=4), st.one_of(st.text(max_size=4), st.integers()), max_size=2),
)


def test_random_budget_configs_config_error_or_valid() -> None:
    from finops.budgets import load_budgets
    from finops.errors import ConfigError

    @SETTINGS
    @given(
        entries=st.lists(
            st.dictionaries(
                st.sampled_from(
                    [
                        "limit",
                        "period",
                        "unit",
                        "action",
                        "scope",
                        "tz",
                        "name",
                        "downgrade_to",
                        "perid",
                    ]
                ),
                BUDGET_VALUE,
                max_size=6,
            ),
            max_size=3,
        )
    )
    def run(entries: list[dict[str, Any]]) -> None:
        try:
            budgets = load_budgets({"budgets": entries})
        except ConfigError as exc:
            assert str(exc)
            return
        for b in budgets:
            assert b.limit >= 0 and b.period in ("hour", "day", "week", "month", "total")

    run()


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        return (
            "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
        )
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value)


def test_random_config_files_config_error_or_valid(tmp_path: Path) -> None:
    from finops.config import load_config
    from finops.errors import ConfigError

    SECTION = st.sampled_from(["finops", "ledger", "budgets", "budget", "cache", "ledgr", "x"])
    KEY = st.sampled_from(
        [
            "ledger",
            "path",
            "store_content",
            "budget_store",
            "estimate",
            "limit",
            "period",
            "unknown_model",
            "spool_dir",
            "price_overrides",
            "junk",
        ]
    )

    @SETTINGS
    @given(doc=st.dictionaries(SECTION, st.dictionaries(KEY, BUDGET_VALUE, max_size=4), max_size=3))
    def run(doc: dict[str, dict[str, Any]]) -> None:
        lines = []
        for section, table in doc.items():
            lines.append(f"[[{section}]]" if section == "budgets" else f"[{section}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in table.items() if v is not None]
        path = tmp_path / "finops.toml"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        try:
            load_config(path)
        except ConfigError as exc:
            assert str(exc)

    run()


# -- async clients and the SDKs' stream helpers on cut streams -------------------------------


def _async_client(case: Case, body: Body) -> Any:
    import anthropic
    import httpx2
    import openai
    from hostile_testing import ANTHROPIC_KEY, OPENAI_KEY

    http = httpx2.AsyncClient(transport=httpx2.MockTransport(replying(body)))
    if case.provider == "openai":
        return openai.AsyncOpenAI(
            api_key=OPENAI_KEY, base_url="http://provider.test/v1", http_client=http, max_retries=0
        )
    return anthropic.AsyncAnthropic(
        api_key=ANTHROPIC_KEY, base_url="http://provider.test", http_client=http, max_retries=0
    )


async def _async_outcome(client: Any, case: Case) -> tuple[str, Any]:
    try:
        if case.name.startswith("chat"):
            stream = await client.chat.completions.create(**case.body)
        elif case.name.startswith("responses"):
            stream = await client.responses.create(**case.body)
        else:
            stream = await client.messages.create(**case.body)
        return "ok", [e.model_dump(mode="json", warnings=False) async for e in stream]
    except Exception as exc:
        return "raise", type(exc).__name__


def _helper_outcome(client: Any, case: Case) -> tuple[str, Any]:
    kwargs = {k: v for k, v in case.body.items() if k not in ("stream", "stream_options")}
    try:
        if case.name == "chat_stream":
            with client.chat.completions.stream(**kwargs) as stream:
                types = [event.type for event in stream]
            return "ok", types
        if case.name == "messages_stream":
            with client.messages.stream(**kwargs) as stream:
                types = [event.type for event in stream]
                text = stream.get_final_text()
            return "ok", (types, text)
        with client.responses.stream(**kwargs) as stream:
            types = [event.type for event in stream]
        return "ok", types
    except Exception as exc:
        return "raise", type(exc).__name__


async def test_async_clients_and_stream_helpers_on_cut_streams(
    fo: finops.FinOps, bodies: dict[str, Body]
) -> None:
    attempts = 0
    for name in STREAMS:
        case, data = CASES[name], bodies[name].data
        last = data.rstrip(b"\n").rfind(b"\n\n")
        for cut in (len(data), last + 25, len(data) // 3 + 7, 40):
            body = Body(bodies[name].content_type, data[:cut])
            raw = await _async_outcome(_async_client(case, body), case)
            wrapped = await _async_outcome(fo.wrap(_async_client(case, body)), case)
            assert wrapped == raw, (name, cut, raw, wrapped)
            raw_helper = _helper_outcome(sdk_client(case, replying(body)), case)
            wrapped_helper = _helper_outcome(fo.wrap(sdk_client(case, replying(body))), case)
            assert wrapped_helper == raw_helper, (name, cut, raw_helper, wrapped_helper)
            attempts += 2
    assert fo.flush(timeout_s=30)
    assert fo.ledger.query("SELECT count(*) FROM calls")[0][0] == attempts
