"""Router metrics on hand-made cases whose figures can be worked out on paper."""

from __future__ import annotations

import numpy as np
import pytest

from finops.routing.metrics import evaluate, oracle_scores, quality_curve, random_metrics

# 10 prompts: strong right on 8, weak right on 5.
# gains (strong - weak): three +1 (only strong right), five 0, ... and no -1.
STRONG = [1, 1, 1, 1, 1, 1, 1, 1, 0, 0]
WEAK = [0, 0, 0, 1, 1, 1, 1, 1, 0, 0]


def test_quality_curve_endpoints() -> None:
    cost, quality = quality_curve(np.zeros(10), STRONG, WEAK)
    assert cost[0] == 0.0 and cost[-1] == 1.0
    assert quality[0] == pytest.approx(0.5)
    assert quality[-1] == pytest.approx(0.8)


def test_oracle_on_paper() -> None:
    m = evaluate(oracle_scores(STRONG, WEAK), STRONG, WEAK)
    # 95 % of 0.8 = 0.76 -> need 0.26 above 0.5 -> 3 prompts -> c = 0.3
    assert m.saving95 == pytest.approx(0.7)
    # PGR reaches 0.5 after 2 prompts (0.667), 0.8 after 3 (1.0)
    assert m.cpt50 == pytest.approx(0.2)
    assert m.cpt80 == pytest.approx(0.3)
    # PGR curve: 0, 1/3, 2/3, 1, 1, ... -> trapezoid area = 1 - 0.15 = 0.85
    assert m.apgr == pytest.approx(0.85)


def test_worst_router_is_last() -> None:
    m = evaluate(-oracle_scores(STRONG, WEAK), STRONG, WEAK)
    assert m.saving95 == pytest.approx(0.0)
    assert m.apgr < 0.5


def test_random_is_linear() -> None:
    m = random_metrics(STRONG, WEAK)
    assert m.apgr == pytest.approx(0.5)
    assert m.cpt50 == pytest.approx(0.5)
    assert m.cpt80 == pytest.approx(0.8)
    # (0.76 - 0.5) / 0.3 = 0.8667 -> first grid point 0.9 -> saving 0.1
    assert m.saving95 == pytest.approx(0.1)


def test_price_ratio_scales_saving() -> None:
    m = evaluate(oracle_scores(STRONG, WEAK), STRONG, WEAK, price_ratio=0.1)
    assert m.saving95_priced == pytest.approx(0.7 * 0.9)


def test_weak_as_good_saves_everything() -> None:
    m = evaluate([0.0, 0.0], [1, 0], [1, 0])
    assert m.saving95 == 1.0 and m.apgr == 1.0


def test_ties_are_stable_and_length_checked() -> None:
    a = evaluate(np.zeros(10), STRONG, WEAK)
    b = evaluate(np.zeros(10), STRONG, WEAK)
    assert a == b
    with pytest.raises(ValueError):
        evaluate([0.0], STRONG, WEAK)
