"""Estimates against 1,100+ real recorded calls (tests/fixtures/calibration/).

The constants in finops/tokens/data/models.json were fitted on the train split only
(projects crewAI, simonw/llm*, agentops); the test split is three other projects. The
accuracy targets are checked on the test split; the bound on every call.
"""

from __future__ import annotations

import statistics
import sys
from collections import defaultdict
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures" / "calibration"))

import calib

# Targets: mean |relative error| on the test split (issue 14).
TARGETS = {
    "openai/text": 0.02,
    "openai/tools": 0.05,
    "anthropic/text": 0.10,
    "anthropic/tools": 0.10,
}


@pytest.fixture(scope="module")
def scored() -> list[calib.Scored]:
    return calib.score(calib.load())


def test_enough_calls_from_enough_projects(scored: list[calib.Scored]) -> None:
    assert len(scored) >= 1000
    repos = {s.row.repo for s in scored}
    assert len(repos) >= 8
    test = {s.row.repo for s in scored if s.row.split == "test"}
    train = {s.row.repo for s in scored if s.row.split == "train"}
    assert test and train and not test & train  # split by project, never by call
    providers = {s.row.provider: 0 for s in scored}
    for s in scored:
        providers[s.row.provider] += 1
    assert providers["anthropic"] >= 150 and providers["openai"] >= 800


def test_bound_is_never_below_the_bill(scored: list[calib.Scored]) -> None:
    below = [
        (s.row.repo, s.row.src, s.upper, s.bound, s.row.billed_input)
        for s in scored
        if s.upper < s.row.billed_input or s.bound < s.row.billed_input
    ]
    assert not below, below[:10]


def test_bound_margin_is_moderate(scored: list[calib.Scored]) -> None:
    # What the guarantee costs: input_tokens_max / billed (docs/tokens.md states these).
    ratios = sorted(
        s.upper / s.row.billed_input for s in scored if s.row.shape in ("text", "tools")
    )
    assert statistics.median(ratios) <= 1.5
    assert ratios[int(0.95 * (len(ratios) - 1))] <= 3.0


@pytest.mark.parametrize("bucket", sorted(TARGETS))
def test_accuracy_on_the_held_out_projects(scored: list[calib.Scored], bucket: str) -> None:
    errors = [abs(s.error) for s in scored if s.row.split == "test" and calib.bucket(s) == bucket]
    assert len(errors) >= 10, bucket
    assert statistics.mean(errors) <= TARGETS[bucket], (bucket, statistics.mean(errors))


def test_openai_text_is_mostly_exact(scored: list[calib.Scored]) -> None:
    rows = [s for s in scored if calib.bucket(s) == "openai/text"]
    exact = sum(1 for s in rows if s.estimate == s.row.billed_input)
    assert exact >= 0.9 * len(rows)


def test_every_family_with_data_is_reported(scored: list[calib.Scored]) -> None:
    by_family: dict[str, int] = defaultdict(int)
    for s in scored:
        by_family[s.family] += 1
    for family in ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-5", "claude-3", "claude-4"):
        assert by_family[family] >= 3, family
