"""Fail-fast configuration: every mistake is a ConfigError at construction, with a useful
message (file, key path, what was expected, did-you-mean); valid configurations still load."""

from __future__ import annotations

from pathlib import Path

import pytest

import finops
from finops.errors import ConfigError

BUDGET = '[[budgets]]\nlimit = "1"\nperiod = "day"\n'

# (toml text, words the message must contain)
MISTAKES: list[tuple[str, list[str]]] = [
    ('[[budget]]\nlimit = "1"\nperiod = "day"\n', ["unknown section `budget`", "`budgets`"]),
    ('[ledgr]\npath = "x.duckdb"\n', ["unknown section `ledgr`", "did you mean `ledger`"]),
    ('[finops]\nledgr = "x.duckdb"\n', ["[finops].ledgr", "did you mean `[finops].ledger`"]),
    ("[finops]\nstore_contents = true\n", ["store_contents", "[finops].store_content"]),
    ('[finops]\nstore_content = "no"\n', ["store_content", "true or false"]),
    ("[finops]\nledger = 3\n", ["[finops].ledger", "path"]),
    ('[finops]\nestimate = "exactt"\n', ["estimate", "did you mean `exact`"]),
    ('[finops]\nunknown_model = "rase"\n', ["unknown_model", "did you mean `raise`"]),
    ('[finops]\nunknown_model = "fallback:"\n', ["unknown_model", "fallback:<model>"]),
    ('[ledger]\npth = "x.duckdb"\n', ["[ledger].pth", "did you mean `[ledger].path`"]),
    ('[finops]\nledger = "a.duckdb"\n[ledger]\npath = "b.duckdb"\n', ["both set", "keep one"]),
    ('ledger = "x.duckdb"\n', ["`ledger` must be a table"]),
    ("store_content = true\n", ["put it under [finops]"]),
    ('[budgets]\nlimit = "1"\n', ["array of tables", "[[budgets]]"]),
    ('[[budgets]]\nlimit = "1"\nperiod = "dya"\n', ["budgets[0].period", "did you mean `day`"]),
    ('[[budgets]]\nlimit = "1"\nperiod = "day"\nunit = "dollars"\n', ["budgets[0].unit", "usd"]),
    (
        '[[budgets]]\nlimit = "1"\nperiod = "day"\naction = "block"\n',
        ["budgets[0].action", "raise"],
    ),
    (
        '[[budgets]]\nlimit = "1"\nperiod = "day"\nunits = "tokens"\n',
        ["budgets[0].units", "`budgets[0].unit`"],
    ),
    ('[[budgets]]\nlimit = "1"\nperiod = "day"\ntz = "Mars/Olympus"\n', ["tz", "IANA"]),
    ('[[budgets]]\nlimit = "lots"\nperiod = "day"\n', ["limit", "not a number"]),
    ('[[budgets]]\nlimit = "1"\n', ["period", "required"]),
    (BUDGET + '[[budgets]]\nlimit = "2"\nperiod = "day"\n', ["same name"]),
    ('[finops]\nbudget_store = "redis://localhost:abc/0"\n', ["budget_store", "malformed"]),
    ('[finops]\nbudget_store = "redis://:6379/0"\n', ["budget_store", "no host"]),
    ('[finops]\nbudget_store = "redis://localhost:6379/zero"\n', ["database must be a number"]),
    ('[finops]\nbudget_store = "sqlite://budgets.db"\n', ["sqlite:///relative/path.db"]),
    ('[finops]\nbudget_store = "sqlit:///b.db"\n', ["did you mean `sqlite`"]),
    ('[finops]\nbudget_store = "postgres://x"\n', ["not supported"]),
    ('[finops]\nprice_overrides = "missing.json"\n', ["price_overrides", "does not exist"]),
    ('[finops]\nprice_overrides = "bad.json"\n', ["price_overrides", "not valid JSON"]),
    ('[finops]\nprice_overrides = "bad.toml"\n', ["price_overrides", "not valid TOML"]),
    ('[finops]\nprice_overrides = "unknown_key.json"\n', ["price_overrides", "discount"]),
    ('[finops]\nprice_overrides = "bad_discount.json"\n', ["price_overrides", "100%"]),
    (
        '[finops]\nprice_overrides = { discounts = { openai = "150%" } }\n',
        ["price_overrides", "100%"],
    ),
    ('[finops]\nprices = "no_such_dir"\n', ["prices", "not a directory"]),
    ('[finops]\nledger = "afile/x.duckdb"\n', ["ledger", "not a directory"]),
    ('[finops]\nledger = "afile/sub/x.duckdb"\n', ["ledger", "cannot be created"]),
    ('[finops]\nledger = "adir"\n', ["ledger", "is a directory"]),
    ('[finops]\nspool_dir = "afile"\n', ["spool_dir", "not a directory"]),
    ("[providers]\nenabled = true\n", ["[providers]", "not supported"]),
    ('[providers]\n"gw.internal" = "groq"\n', ["[providers]", "[finops]", "providers = {"]),
    ("[routing]\nenabled = true\n", ["[routing].enabled", "unknown setting"]),
    ('[routing]\nmode = "on"\n', ["[routing]", "routes"]),
    (
        '[[routing.routes]]\nsource = "o3"\n[[routing.routes.targets]]\nmodle = "gpt-4.1"\n',
        ["[routing]", "modle"],
    ),
    ("[cache]\nenabled = true\n", ["[cache].enabled", "unknown setting"]),
    ('[cache]\nttl = "soon"\n', ["[cache]", "ttl", "not a duration"]),
    ('[finops\nledger = "x"\n', ["not valid TOML"]),
]


@pytest.fixture()
def cfg_dir(tmp_path: Path) -> Path:
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    (tmp_path / "bad.toml").write_text("[discounts\n", encoding="utf-8")
    (tmp_path / "unknown_key.json").write_text('{"discount": {"openai": "10%"}}', encoding="utf-8")
    (tmp_path / "bad_discount.json").write_text(
        '{"discounts": {"openai": "150%"}}', encoding="utf-8"
    )
    (tmp_path / "afile").write_text("I am a file", encoding="utf-8")
    (tmp_path / "adir").mkdir()
    return tmp_path


@pytest.mark.parametrize(("text", "words"), MISTAKES, ids=[m[0][:40] for m in MISTAKES])
def test_config_mistake_raises_config_error(cfg_dir: Path, text: str, words: list[str]) -> None:
    path = cfg_dir / "finops.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        finops.FinOps.from_config(path)
    message = str(info.value)
    for word in words:
        assert word in message, message
    assert "finops.toml" in message or "price_overrides" in message or "prices" in message, message
    # nothing was half-built: no ledger file appeared for a refused configuration
    assert not (cfg_dir / "finops.duckdb").exists()


def test_from_config_keyword_typo(tmp_path: Path) -> None:
    path = tmp_path / "finops.toml"
    path.write_text('[finops]\nledger = "x.duckdb"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="did you mean `store_content`"):
        finops.FinOps.from_config(path, store_contnet=True)


def test_missing_and_directory_config_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        finops.FinOps.from_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="is a directory"):
        finops.FinOps.from_config(tmp_path)


KEYWORD_MISTAKES: list[tuple[dict[str, object], str]] = [
    ({"price_overrides": "{not json}.json"}, "does not exist"),
    ({"store_content": "yes"}, "store_content"),
    ({"budgets": "team=search"}, "list of finops.Budget"),
    ({"budgets": [{"limit": "1", "period": "day"}]}, "finops.Budget"),
    ({"budget_store": "redis://host:port/0"}, "malformed"),
    ({"budget_store": "memcached://x"}, "not supported"),
    ({"budget_store": 42}, "URL string"),
    ({"clock": "now"}, "callable"),
    ({"on_budget_warn": 1}, "callable"),
    ({"prices": 12}, "PriceBook"),
    ({"estimate": "fast"}, "not a mode"),
    ({"unknown_model": "ignore"}, "not a policy"),
    ({"ledger": ""}, "ledger"),
]


@pytest.mark.parametrize(("kwargs", "word"), KEYWORD_MISTAKES, ids=[w for _, w in KEYWORD_MISTAKES])
def test_keyword_mistakes(tmp_path: Path, kwargs: dict[str, object], word: str) -> None:
    kwargs = {"ledger": tmp_path / "l.duckdb", **kwargs}
    with pytest.raises(ConfigError, match=word):
        finops.FinOps(**kwargs)  # type: ignore[arg-type]


def test_keyword_price_override_file_is_validated_eagerly(tmp_path: Path) -> None:
    bad = tmp_path / "overrides.json"
    bad.write_text("this is not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid JSON"):
        finops.FinOps(ledger=tmp_path / "l.duckdb", price_overrides=bad)
    bad.write_text('{"models": [{"id": "my-model"}]}', encoding="utf-8")
    with pytest.raises(ConfigError, match="needs prices or gpu_hour"):
        finops.FinOps(ledger=tmp_path / "l.duckdb", price_overrides=bad)
    bad.write_text('{"models": [{"id": "m", "prices": {"inptu_mtok": 1}}]}', encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown price key"):
        finops.FinOps(ledger=tmp_path / "l.duckdb", price_overrides=bad)


def test_ledger_path_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    with pytest.raises(ConfigError, match="cannot be created"):
        finops.FinOps(ledger=blocker / "sub" / "l.duckdb")
    with pytest.raises(ConfigError, match="spool_dir"):
        finops.FinOps(ledger=tmp_path / "l.duckdb", spool_dir=blocker)


def test_valid_configs_still_load(tmp_path: Path) -> None:
    (tmp_path / "overrides.toml").write_text(
        '[discounts]\nopenai = "10%"\n\n[[models]]\nid = "my-llm"\n'
        "prices = { input_mtok = 1, output_mtok = 2 }\n",
        encoding="utf-8",
    )
    path = tmp_path / "finops.toml"
    path.write_text(
        """
[finops]
budget_store = "sqlite:///state/budgets.db"
unknown_model = "fallback:gpt-4o"
store_content = false
estimate = "bound"
price_overrides = "overrides.toml"

[ledger]
path = "data/ledger.duckdb"
spool_dir = "data/spool"

[[budgets]]
scope = { team = "search" }
limit = "50.00"
period = "day"
tz = "Europe/Paris"

[[budgets]]
scope = { agent = "*" }
limit = 200000
unit = "tokens"
period = "hour"
action = "downgrade"
downgrade_to = "gpt-4o-mini"
""",
        encoding="utf-8",
    )
    with finops.FinOps.from_config(path) as fo:
        assert fo._budgets is not None
        assert [b.name for b in fo._budgets.budgets] == ["team=search/day", "agent=*/hour/tokens"]
        assert fo.pricebook().resolve(model="my-llm", provider=None) is not None
        assert fo.ledger.path == (tmp_path / "data" / "ledger.duckdb").resolve()
    assert (tmp_path / "data" / "ledger.duckdb").exists()
    # inline overrides table, redis URL (not contacted without budgets), memory
    path.write_text(
        '[finops]\nledger = "l2.duckdb"\nbudget_store = "redis://127.0.0.1:6390/2"\n'
        'price_overrides = { discounts = { anthropic = "5%" } }\n',
        encoding="utf-8",
    )
    finops.FinOps.from_config(path).close()
    finops.FinOps.from_config(path, budget_store="memory").close()
    finops.FinOps(
        ledger=tmp_path / "k.duckdb", price_overrides={"discounts": {"openai": 10}}
    ).close()


def test_did_you_mean_helper() -> None:
    from finops.config import did_you_mean

    assert did_you_mean("budget", ["finops", "ledger", "budgets"]) == "; did you mean `budgets`?"
    assert did_you_mean("zzz", ["finops"]) == ""


@pytest.mark.parametrize(
    ("overrides", "hint"),
    [
        ({"discount": {"openai": "10%"}}, "did you mean `discounts`?"),
        (
            {"models": [{"id": "m", "prices": {"input_mtok": 1}, "contxt_window": 5}]},
            "did you mean `context_window`?",
        ),
        (
            {"models": [{"id": "m", "gpu_hour": {"usd_per_gpu_hour": 1, "tokens_per_sec": 3}}]},
            "did you mean `tokens_per_second`?",
        ),
    ],
)
def test_price_override_typos_suggest_the_key(
    tmp_path: Path, overrides: dict[str, object], hint: str
) -> None:
    with pytest.raises(ConfigError, match="did you mean") as info:
        finops.FinOps(ledger=tmp_path / "l.duckdb", price_overrides=overrides)
    assert hint in str(info.value)


def test_budget_keyword_typo_suggests_the_field() -> None:
    with pytest.raises(ConfigError, match="did you mean `period`"):
        finops.Budget(limit="1", perod="day")  # type: ignore[call-arg]


def test_routing_table_loads_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "finops.toml"
    path.write_text(
        '[finops]\nledger = "l.duckdb"\n\n[routing]\nmode = "shadow"\nkeep_quality = 0.9\n\n'
        '[[routing.routes]]\nsource = "o3"\n[[routing.routes.targets]]\nmodel = "gpt-4.1-mini"\n'
        '\n[[routing.scopes]]\ntag = "feature"\nvalue = "legal"\nmode = "off"\n',
        encoding="utf-8",
    )
    with finops.FinOps.from_config(path) as fo:
        assert "route" in fo.steps
        assert fo.steps.index("route") < fo.steps.index("estimate")
