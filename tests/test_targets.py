"""Utilities from NLLs and target distributions, on hand-made numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from uae.config import TargetConfig
from uae.data.tables import NO_PASSAGE, NLLRecord
from uae.targets import build_targets, target_distribution, utilities_from_nlls


def rec(qid: str, pid: str, answer: int, nll: float) -> NLLRecord:
    return NLLRecord(query_id=qid, passage_id=pid, answer_index=answer, nll=nll, answer_tokens=3)


TWO_ANSWERS = [
    rec("q", NO_PASSAGE, 0, 2.0),
    rec("q", NO_PASSAGE, 1, 3.0),
    rec("q", "d1", 0, 1.5),  # u = 0.5
    rec("q", "d1", 1, 1.0),  # u = 2.0
    rec("q", "d2", 0, 2.5),  # u = -0.5
    rec("q", "d2", 1, 3.25),  # u = -0.25
]


def test_utilities_mean_over_two_answers() -> None:
    utilities, skipped = utilities_from_nlls(TWO_ANSWERS, aggregate="mean")
    assert utilities["q"] == pytest.approx({"d1": 1.25, "d2": -0.375})
    assert skipped.total == 0


def test_utilities_max_over_two_answers() -> None:
    utilities, _ = utilities_from_nlls(TWO_ANSWERS, aggregate="max")
    assert utilities["q"] == pytest.approx({"d1": 2.0, "d2": -0.25})


def test_missing_no_passage_row_is_counted() -> None:
    records = [rec("ok", NO_PASSAGE, 0, 1.0), rec("ok", "d", 0, 0.5), rec("bad", "d", 0, 0.5)]
    utilities, skipped = utilities_from_nlls(records)
    assert list(utilities) == ["ok"]
    assert skipped.counts == {"missing no-passage NLL": 1}
    assert skipped.examples["missing no-passage NLL"] == ["bad"]


def test_missing_no_passage_for_one_answer_is_counted() -> None:
    records = [rec("q", NO_PASSAGE, 0, 1.0), rec("q", "d", 0, 0.5), rec("q", "d", 1, 0.5)]
    utilities, skipped = utilities_from_nlls(records)
    assert utilities == {}
    assert skipped.counts == {"missing no-passage NLL": 1}


def test_query_without_passage_rows_is_counted() -> None:
    utilities, skipped = utilities_from_nlls([rec("q", NO_PASSAGE, 0, 1.0)])
    assert utilities == {}
    assert skipped.counts == {"no passage rows": 1}


def test_duplicate_rows_raise_naming_them() -> None:
    records = [rec("q", NO_PASSAGE, 0, 1.0), rec("q", "d7", 0, 0.5), rec("q", "d7", 0, 0.4)]
    with pytest.raises(ValueError, match=r"duplicate.*'q'.*'d7'.*answer 0"):
        utilities_from_nlls(records)


def test_unknown_aggregate_raises() -> None:
    with pytest.raises(ValueError, match="aggregate"):
        utilities_from_nlls(TWO_ANSWERS, aggregate="median")  # type: ignore[arg-type]


def test_plain_softmax_matches_hand_computation() -> None:
    probs = target_distribution([1.0, 0.0], TargetConfig(tau_t=0.5))
    e = np.exp(2.0)
    np.testing.assert_allclose(probs, [e / (e + 1), 1 / (e + 1)])


def test_constant_utilities_return_none() -> None:
    assert target_distribution([0.3, 0.3, 0.3 + 1e-12], TargetConfig()) is None


def test_floor_applies_before_constant_check() -> None:
    assert target_distribution([-5.0, -2.0], TargetConfig(harmful_floor=-1.0)) is None
    probs = target_distribution([-50.0, -2.0, 1.0], TargetConfig(harmful_floor=-2.0))
    assert probs[0] == pytest.approx(probs[1])


@pytest.mark.parametrize(
    "utilities",
    [[1e6, 0.0, -1e6], [2e-8, 4e-8, 0.0], [-3.0, -7.0, -1e6], [1e6, 1e6 - 1.0, 5.0]],
)
@pytest.mark.parametrize("normalize", ["none", "zscore"])
def test_extreme_utilities_give_finite_distributions(utilities: list[float], normalize: str) -> None:
    probs = target_distribution(utilities, TargetConfig(tau_t=1e-6, normalize=normalize))
    assert probs is not None
    assert np.all(np.isfinite(probs))
    assert probs.sum() == pytest.approx(1.0)
    assert int(np.argmax(probs)) == int(np.argmax(utilities))


def test_zscore_makes_targets_scale_and_shift_invariant() -> None:
    config = TargetConfig(normalize="zscore")
    a = target_distribution([1.0, 2.0, 4.0], config)
    b = target_distribution([10.0 * u - 7.0 for u in [1.0, 2.0, 4.0]], config)
    np.testing.assert_allclose(a, b)


def test_top_m_zeroes_the_rest_and_renormalises() -> None:
    probs = target_distribution([3.0, 1.0, 2.0, 0.0], TargetConfig(tau_t=1.0, top_m=2))
    e3, e2 = np.exp(3.0), np.exp(2.0)
    np.testing.assert_allclose(probs, [e3 / (e3 + e2), 0.0, e2 / (e3 + e2), 0.0])
    assert probs[1] == 0.0 and probs[3] == 0.0


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValidationError):
        TargetConfig(tau_t=0.0)
    with pytest.raises(ValidationError):
        TargetConfig(top_m=0)
    with pytest.raises(ValidationError):
        TargetConfig(normalize="minmax")  # type: ignore[arg-type]


def test_non_finite_utilities_raise() -> None:
    with pytest.raises(ValueError, match="finite"):
        target_distribution([1.0, float("nan")], TargetConfig())


def test_build_targets_counts_constant_utilities_and_keeps_pool_order() -> None:
    utilities = {"flat": {"a": 0.2, "b": 0.2}, "q": {"x": 0.0, "y": 1.0, "unpooled": 9.0}}
    pools = {"flat": ["a", "b"], "q": ["y", "x"]}
    targets, skipped = build_targets(utilities, pools, TargetConfig(tau_t=1.0))
    assert list(targets) == ["q"]
    e = np.exp(1.0)
    np.testing.assert_allclose(targets["q"], [e / (e + 1), 1 / (e + 1)])
    assert skipped.counts == {"constant utilities": 1}
    assert skipped.examples["constant utilities"] == ["flat"]


def test_build_targets_counts_queries_without_utilities_or_pool() -> None:
    utilities = {"nopool": {"a": 1.0, "b": 0.0}}
    pools = {"noutil": ["a", "b"]}
    targets, skipped = build_targets(utilities, pools, TargetConfig())
    assert targets == {}
    assert skipped.counts == {"no utilities": 1, "no pool": 1}


def test_build_targets_raises_on_pool_passage_without_utility() -> None:
    with pytest.raises(ValueError, match=r"'q'.*'missing'"):
        build_targets({"q": {"a": 1.0}}, {"q": ["a", "missing"]}, TargetConfig())


def test_nlls_to_targets_end_to_end() -> None:
    utilities, _ = utilities_from_nlls(TWO_ANSWERS)
    targets, skipped = build_targets(utilities, {"q": ["d2", "d1"]}, TargetConfig(tau_t=1.0))
    expected = np.exp([-0.375, 1.25]) / np.exp([-0.375, 1.25]).sum()
    np.testing.assert_allclose(targets["q"], expected)
    assert skipped.total == 0


# ---- one training row: confidence and gold rules --------------------------------------------------


def softmax_by_hand(values, tau):
    exps = [math.exp(v / tau) for v in values]
    return [e / sum(exps) for e in exps]


def test_confidence_weight_scales_a_row_by_its_best_utility() -> None:
    from uae.targets import row_target

    row = row_target([0.1, 0.4, 0.2], None, TargetConfig(tau_t=0.5, confidence="weight"), threshold=0.8)
    assert row.weight == pytest.approx(0.5)
    assert row.values.tolist() == pytest.approx([0.5 * p for p in softmax_by_hand([0.1, 0.4, 0.2], 0.5)])


def test_confidence_soften_raises_the_temperature_of_an_unsure_query() -> None:
    from uae.targets import row_target

    row = row_target([0.1, 0.4, 0.2], None, TargetConfig(tau_t=0.5, confidence="soften"), threshold=0.8)
    assert row.softened and row.weight == 1.0
    assert row.values.tolist() == pytest.approx(softmax_by_hand([0.1, 0.4, 0.2], 0.5 * 0.8 / 0.4))
    sure = row_target([0.1, 2.0, 0.2], None, TargetConfig(tau_t=0.5, confidence="soften"), threshold=0.8)
    assert not sure.softened and sure.values.tolist() == pytest.approx(softmax_by_hand([0.1, 2.0, 0.2], 0.5))


@pytest.mark.parametrize("rule", ["skip", "weight", "soften"])
def test_a_query_where_no_passage_helps_is_skipped(rule: str) -> None:
    from uae.targets import row_target

    assert row_target([-0.3, -0.1, -0.2], None, TargetConfig(confidence=rule)).skip.startswith("no passage helps")
    kept = row_target([-0.3, -0.1, -0.2], None, TargetConfig(confidence="none", tau_t=1.0))
    assert kept.values.tolist() == pytest.approx(softmax_by_hand([-0.3, -0.1, -0.2], 1.0))


def test_confidence_skip_drops_only_unsure_queries() -> None:
    from uae.targets import row_target

    config = TargetConfig(confidence="skip")
    assert row_target([0.2, 0.9], None, config, threshold=1.0).skip.startswith("low confidence")
    assert row_target([0.2, 1.1], None, config, threshold=1.0).skip is None


def test_the_confidence_threshold_is_a_quantile_of_the_helpful_queries_unless_fixed() -> None:
    from uae.targets import confidence_threshold

    best = [-0.5, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5]  # the two queries where nothing helps are left out
    assert confidence_threshold(best, TargetConfig(confidence_quantile=0.5)) == pytest.approx(0.3)
    assert confidence_threshold(best, TargetConfig(confidence_quantile=0.25)) == pytest.approx(0.2)
    assert confidence_threshold(best, TargetConfig(confident_utility=2.0)) == 2.0
    assert confidence_threshold(best, TargetConfig(confidence="none")) is None


def test_gold_mask_leaves_a_useless_gold_passage_out_of_the_softmax() -> None:
    from uae.targets import MASKED, row_target

    utilities = [3.0, 0.0, 0.5, 0.1]  # passage 1 is gold but the teacher sees no use in it (a bridge paragraph)
    gold = [True, True, False, False]
    row = row_target(utilities, gold, TargetConfig(tau_t=1.0, confidence="none", gold="mask"))
    p = softmax_by_hand(utilities, 1.0)
    kept = p[0] + p[2] + p[3]
    assert row.values.tolist() == pytest.approx([p[0] / kept, MASKED, p[2] / kept, p[3] / kept])
    assert row.masked == 1
    plain = row_target(utilities, gold, TargetConfig(tau_t=1.0, confidence="none", gold="none"))
    assert plain.values.tolist() == pytest.approx(p) and plain.masked == 0


def test_gold_floor_gives_the_gold_passages_their_share() -> None:
    from uae.targets import row_target

    utilities = [3.0, 0.0, 0.5, 0.1]
    gold = [False, True, False, True]
    row = row_target(utilities, gold, TargetConfig(tau_t=1.0, confidence="none", gold="floor", gold_floor=0.4))
    p = softmax_by_hand(utilities, 1.0)
    deficit = (0.4 - (p[1] + p[3])) / 2
    scale = 0.6 / (p[0] + p[2])
    assert row.values.tolist() == pytest.approx([p[0] * scale, p[1] + deficit, p[2] * scale, p[3] + deficit])
    assert row.floored and row.values[[1, 3]].sum() == pytest.approx(0.4)
