"""The offline teacher: the Dirichlet formula by hand, and utilities that reward answer-bearing passages."""

from __future__ import annotations

import math

import pytest

from uae.teachers import DirichletTeacher, NLLRequest, load_teacher


def test_nll_matches_the_formula_by_hand():
    teacher = DirichletTeacher(mu=10)
    teacher.fit(["red apple", "green apple", "blue sky"])  # 6 tokens, 5 types
    result = teacher.score([NLLRequest("which apple?", "red apple", "a red one")])[0]
    p_c = {w: (c + 1) / (6 + 6) for w, c in {"red": 1, "apple": 2}.items()}
    context = ["which", "apple", "a", "red", "one"]
    expected = -(
        math.log((context.count("red") + 10 * p_c["red"]) / (5 + 10))
        + math.log((context.count("apple") + 10 * p_c["apple"]) / (5 + 10))
    ) / 2
    assert result.nll == pytest.approx(expected, abs=1e-12)
    assert result.answer_tokens == 2


def test_passage_with_the_answer_lowers_nll_and_one_without_raises_it():
    teacher = DirichletTeacher()
    teacher.fit(["the town was founded in 1742", "the founding of the town is debated"])
    alone, helpful, distractor = teacher.score(
        [
            NLLRequest("when was the town founded?", "1742"),
            NLLRequest("when was the town founded?", "1742", "settlers arrived in 1742"),
            NLLRequest("when was the town founded?", "1742", "the founding of the town is debated"),
        ]
    )
    assert alone.nll - helpful.nll > 0
    assert alone.nll - distractor.nll < 0


def test_spec_parsing_and_errors():
    assert load_teacher("dirichlet:mu=50").mu == 50
    with pytest.raises(ValueError, match="unknown teacher"):
        load_teacher("gpt5")
    teacher = DirichletTeacher()
    with pytest.raises(RuntimeError, match="fit"):
        teacher.score([NLLRequest("q", "a")])
    teacher.fit(["x"])
    with pytest.raises(ValueError, match="no word tokens"):
        teacher.score([NLLRequest("q", "?!")])
