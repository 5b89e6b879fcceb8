"""LLM re-rankers: hand-computed scores on tiny random models, the RankGPT window and parser, `uae eval --rerank`."""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoModelForCausalLM, AutoTokenizer

from uae.data.schema import Corpus, Passage, Query
from uae.rerankers import Reranker, latency_summary, load_reranker, rerank_run, strictly_decreasing
from uae.rerankers.judge import JUDGE_TEMPLATES, JudgeReranker
from uae.rerankers.oracle import OracleReranker
from uae.rerankers.rankgpt import ParseStats, RankGPTReranker, parse_permutation, window_spans
from uae.rerankers.upr import UPR_INSTRUCTION, UPR_TEMPLATES, UPRReranker
from uae.retrieval.types import Hit
from uae.teachers import DirichletTeacher, NLLRequest, load_teacher

QUESTION = "where is the eiffel tower?"
PASSAGES = [
    "the eiffel tower is a wrought iron lattice tower in paris.",
    "bananas are yellow fruit.",
    "paris is the capital of france and home of the eiffel tower.",
]
from conftest import SHARED_DATA

SQUAD = SHARED_DATA / "squad" / "squad-v1.1-dev-part1.json"


@lru_cache(maxsize=4)
def _plain_model(path: Path) -> tuple[AutoModelForCausalLM, AutoTokenizer]:
    return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def _hand_log_probs(path: Path, prompt: str) -> tuple[torch.Tensor, list[int], AutoTokenizer]:
    """Full forward of the plain model on BOS + prompt; log-softmax over the vocabulary at every position."""
    model, tokenizer = _plain_model(path)
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    ids = bos + tokenizer(prompt, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float()
    return torch.log_softmax(logits, dim=-1), ids, tokenizer


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def model_dir(request: pytest.FixtureRequest) -> Path:
    return request.getfixturevalue(f"tiny_{request.param}_dir")


# ---- the base class ---------------------------------------------------------------------------


class _ByLength(Reranker):
    """Scores a passage by its length; NaN for passages that contain 'nan'."""

    name = "by_length"

    def score(self, query: str, passages: list[str]) -> list[float]:
        return [math.nan if "nan" in p else float(len(p)) for p in passages]


def _corpus(texts: dict[str, str]) -> Corpus:
    return Corpus(Passage(id=pid, text=text) for pid, text in texts.items())


def test_rerank_sorts_the_head_keeps_the_tail_and_records_latency() -> None:
    corpus = _corpus({"a": "x", "b": "xxx", "c": "xx", "d": "xxxx", "e": "xxxxx"})
    first_stage = [[Hit("a", 0.9), Hit("b", 0.8), Hit("c", 0.7), Hit("d", 0.6), Hit("e", 0.5)], [Hit("c", 0.3)]]
    reranker = _ByLength()
    ranked = reranker.rerank(["q1", "q2"], first_stage, corpus, depth=3)
    assert [h.passage_id for h in ranked[0]] == ["b", "c", "a", "d", "e"]  # d, e below depth: first-stage order
    assert [h.score for h in ranked[0][:3]] == [3.0, 2.0, 1.0]
    assert ranked[0][3].score < ranked[0][2].score and ranked[0][4].score < ranked[0][3].score
    assert [h.passage_id for h in ranked[1]] == ["c"]
    assert len(reranker.latencies) == 2 and all(t >= 0 for t in reranker.latencies)
    assert [h.passage_id for h in reranker.rerank(["q1"], first_stage[:1], corpus, 3, keep_tail=False)[0]] == ["b", "c", "a"]


def test_non_finite_scores_are_repaired_and_counted() -> None:
    corpus = _corpus({"a": "nan here", "b": "xx", "c": "x"})
    reranker = _ByLength()
    [ranked] = reranker.rerank(["q"], [[Hit("a", 3), Hit("b", 2), Hit("c", 1)]], corpus, depth=3)
    assert [h.passage_id for h in ranked] == ["b", "c", "a"]
    assert all(math.isfinite(h.score) for h in ranked)
    assert reranker.repairs == {"non_finite_score": 1}


def test_rerank_run_and_latency_summary() -> None:
    corpus = _corpus({"a": "x", "b": "xxx"})
    run = rerank_run(_ByLength(), [Query("q1", "q")], {"q1": {"a": 2.0, "b": 1.0}}, corpus, depth=2)
    assert max(run["q1"], key=run["q1"].get) == "b"
    summary = latency_summary([0.001, 0.002, 0.003, 0.004])
    assert summary == {"queries": 4, "p50_ms": pytest.approx(2.5), "p95_ms": pytest.approx(3.85), "mean_ms": pytest.approx(2.5)}
    assert latency_summary([])["queries"] == 0


class _Constant(Reranker):
    """Scores every passage alike: a re-ranker with no opinion."""

    name = "constant"

    def score(self, query: str, passages: list[str]) -> list[float]:
        return [1.0] * len(passages)


# q2's first stage ties x and y; the metrics rank y first (larger id first, as trec_eval), so that is its order
TIED_FIRST_STAGE = {"q1": {"a": 0.9, "b": 0.8, "c": 0.7, "d": 0.6}, "q2": {"x": 0.5, "y": 0.5, "z": 0.4, "w": 0.3}}
FIRST_STAGE_ORDER = {"q1": ["a", "b", "c", "d"], "q2": ["y", "x", "z", "w"]}
GRADED = {"q1": {"a": 2, "c": 1}, "q2": {"x": 1, "y": 2, "w": 1}}


@pytest.mark.parametrize("depth, keep_tail", [(4, True), (3, True), (3, False)])
def test_tied_rerank_scores_keep_the_first_stage_order_through_the_metrics(depth: int, keep_tail: bool) -> None:
    from uae.evaluation import evaluate, per_query, rank_passages

    corpus = _corpus({pid: f"passage {pid}" for pid in "abcdwxyz"})
    queries = [Query("q1", "q"), Query("q2", "q")]
    run = rerank_run(_Constant(), queries, TIED_FIRST_STAGE, corpus, depth, keep_tail=keep_tail)
    expected = {q: order if keep_tail else order[:depth] for q, order in FIRST_STAGE_ORDER.items()}
    assert {q: rank_passages(run[q]) for q in run} == expected
    first_stage = {q: {pid: float(len(order) - i) for i, pid in enumerate(order)} for q, order in expected.items()}
    metrics = ["ndcg@10", "ndcg@3", "map", "mrr", "recall@1"]
    assert evaluate(GRADED, {"reranked": run}, metrics)["reranked"] == evaluate(GRADED, {"first": first_stage}, metrics)["first"]
    for metric in metrics:
        assert per_query(GRADED, run, metric) == per_query(GRADED, first_stage, metric)


def test_the_oracle_without_a_usable_answer_keeps_the_first_stage_order_through_the_metrics() -> None:
    from uae.evaluation import per_query, rank_passages

    corpus = _corpus({pid: f"passage {pid} about paris" for pid in "abcdwxyz"})
    queries = [Query("q1", QUESTION), Query("q2", QUESTION, ("!!",))]
    run = rerank_run(OracleReranker(DirichletTeacher()), queries, TIED_FIRST_STAGE, corpus, depth=4, keep_tail=False)
    assert {q: rank_passages(run[q]) for q in run} == FIRST_STAGE_ORDER
    assert per_query(GRADED, run, "ndcg@10") == per_query(GRADED, TIED_FIRST_STAGE, "ndcg@10")


def test_strictly_decreasing_moves_only_tied_scores_and_only_by_float_steps() -> None:
    hits = [Hit("a", 1.0), Hit("b", 1.0), Hit("c", 1.0), Hit("d", 0.5), Hit("e", 0.5), Hit("f", -2.0)]
    adjusted = strictly_decreasing(hits)
    assert [h.passage_id for h in adjusted] == list("abcdef")
    scores = [h.score for h in adjusted]
    assert all(upper > lower for upper, lower in zip(scores, scores[1:]))
    assert scores[0] == 1.0 and scores[3] == 0.5 and scores[5] == -2.0  # untied scores are kept exactly
    assert scores[1] == math.nextafter(1.0, 0.0) and scores[2] == math.nextafter(scores[1], 0.0)
    assert scores[4] == math.nextafter(0.5, 0.0)
    big = strictly_decreasing([Hit("a", 1e17), Hit("b", 1e17 - 1.0), Hit("c", 3.0)])  # 1e17 - 1 == 1e17 in floats
    assert big[1].score < big[0].score and big[2].score == 3.0
    assert strictly_decreasing([]) == []


# ---- UPR --------------------------------------------------------------------------------------


def test_upr_score_is_the_hand_computed_question_log_likelihood(model_dir: Path) -> None:
    reranker = load_reranker(f"upr:hf:{model_dir}")
    scores = reranker.score(QUESTION, PASSAGES[:2])
    for passage, score in zip(PASSAGES[:2], scores):
        prompt = UPR_TEMPLATES.prefix(UPR_INSTRUCTION, passage)
        log_probs, prompt_ids, tokenizer = _hand_log_probs(model_dir, prompt + QUESTION)
        n_question = len(tokenizer(QUESTION, add_special_tokens=False)["input_ids"])
        start = len(prompt_ids) - n_question
        picked = log_probs[start - 1 : -1].gather(1, torch.tensor(prompt_ids[start:])[:, None])
        assert score == pytest.approx(picked.mean().item(), abs=1e-5)
    assert reranker.spec == f"upr:hf:{model_dir}" and reranker.describe()["parameters"] > 0


def test_upr_refuses_a_backend_with_other_templates(tiny_gpt2_dir: Path) -> None:
    with pytest.raises(ValueError, match="UPR_TEMPLATES"):
        UPRReranker(load_teacher(f"hf:{tiny_gpt2_dir}"))


# ---- judge ------------------------------------------------------------------------------------


def test_judge_score_is_the_hand_computed_yes_no_log_odds(model_dir: Path) -> None:
    reranker = load_reranker(f"judge:hf:{model_dir}")
    assert reranker.fast
    scores = reranker.score(QUESTION, PASSAGES)
    for passage, score in zip(PASSAGES, scores):
        log_probs, _, tokenizer = _hand_log_probs(model_dir, JUDGE_TEMPLATES.prefix(QUESTION, passage).rstrip())
        [yes] = tokenizer("Yes", add_special_tokens=False)["input_ids"]
        [no] = tokenizer("No", add_special_tokens=False)["input_ids"]
        assert score == pytest.approx((log_probs[-1, yes] - log_probs[-1, no]).item(), abs=1e-5)


def test_judge_fast_path_equals_the_answer_nll_path(tiny_llama_dir: Path) -> None:
    reranker = load_reranker(f"judge:hf:{tiny_llama_dir}")
    fast = reranker.score(QUESTION, PASSAGES)
    reranker.fast = False
    assert reranker.score(QUESTION, PASSAGES) == pytest.approx(fast, abs=1e-4)


def test_judge_on_a_teacher_without_a_model_uses_answer_nlls() -> None:
    teacher = DirichletTeacher()
    teacher.fit(["yes it is in paris", "no bananas"])
    reranker = JudgeReranker(teacher)
    assert not reranker.fast and reranker.describe()["path"] == "answer NLLs of Yes and No"
    [score] = reranker.score(QUESTION, ["yes yes paris"])
    yes, no = teacher.score([NLLRequest(QUESTION, "Yes", "yes yes paris"), NLLRequest(QUESTION, "No", "yes yes paris")])
    assert score == pytest.approx(no.nll - yes.nll) and score > 0


# ---- oracle -----------------------------------------------------------------------------------


def test_oracle_scores_are_teacher_utilities_and_it_is_labelled_an_upper_bound() -> None:
    corpus = _corpus({"p": PASSAGES[0], "b": PASSAGES[1], "f": PASSAGES[2]})
    reranker = load_reranker("oracle:dirichlet")
    query = Query("q", QUESTION, answers=("paris", "in paris"))
    [ranked] = reranker.rerank([query], [[Hit("b", 3), Hit("p", 2), Hit("f", 1)]], corpus, depth=3)
    teacher = DirichletTeacher()
    teacher.fit(corpus.texts)
    expected = {}
    for pid in ("b", "p", "f"):
        gains = [teacher.score([NLLRequest(QUESTION, a)])[0].nll - teacher.score([NLLRequest(QUESTION, a, corpus[pid].text)])[0].nll
                 for a in query.answers]
        expected[pid] = sum(gains) / 2
    assert {h.passage_id: h.score for h in ranked} == pytest.approx(expected)
    assert ranked[-1].passage_id == "b"
    assert reranker.upper_bound and "upper bound" in reranker.caveat()


def test_oracle_keeps_first_stage_order_for_a_query_without_answers() -> None:
    corpus = _corpus({"a": "paris", "b": "bananas"})
    reranker = OracleReranker(DirichletTeacher())
    [ranked] = reranker.rerank([Query("q", QUESTION)], [[Hit("b", 2), Hit("a", 1)]], corpus, depth=2)
    assert [h.passage_id for h in ranked] == ["b", "a"]
    assert reranker.repairs == {"no_gold_answer": 1}
    with pytest.raises(ValueError, match="gold answers"):
        reranker.score(QUESTION, ["paris"])


def test_oracle_leaves_out_answers_without_word_tokens() -> None:
    corpus = _corpus({"a": "paris", "b": "bananas"})
    reranker = OracleReranker(DirichletTeacher())
    [ranked] = reranker.rerank([Query("q", QUESTION, ("%", "paris"))], [[Hit("b", 2), Hit("a", 1)]], corpus, depth=2)
    [alone] = OracleReranker(DirichletTeacher()).rerank([Query("q", QUESTION, ("paris",))], [[Hit("b", 2), Hit("a", 1)]], corpus, depth=2)
    assert ranked == alone and [h.passage_id for h in ranked] == ["a", "b"]
    [kept] = reranker.rerank([Query("q", QUESTION, ("!!", " "))], [[Hit("b", 2), Hit("a", 1)]], corpus, depth=2)
    assert [h.passage_id for h in kept] == ["b", "a"] and reranker.repairs == {"no_usable_gold_answer": 1}


# ---- RankGPT: parser --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "n", "order", "stats"),
    [
        ("[2] > [1] > [3]", 3, [1, 0, 2], ParseStats()),
        ("[2] > [2] > [7] > [0] > [1]", 3, [1, 0, 2], ParseStats(missing=1, duplicates=1, out_of_range=2)),
        ("I cannot rank these passages.", 3, [0, 1, 2], ParseStats(missing=3, unparsable=1)),
        ("2 > 3 > 1", 3, [1, 2, 0], ParseStats()),
        ("[ 3 ] > [ 1 ]", 3, [2, 0, 1], ParseStats(missing=1)),
        ("[3] > [1], e.g. 2 passages", 3, [2, 0, 1], ParseStats(missing=1)),
        ("[123456789012345678901234567890] > [1]", 2, [0, 1], ParseStats(missing=1, out_of_range=1)),
    ],
)
def test_parse_permutation_examples(text: str, n: int, order: list[int], stats: ParseStats) -> None:
    assert parse_permutation(text, n) == (order, stats)


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=200), n=st.integers(min_value=0, max_value=30))
def test_parse_permutation_of_any_text_is_a_permutation(text: str, n: int) -> None:
    order, stats = parse_permutation(text, n)
    assert sorted(order) == list(range(n))
    assert stats.missing == n - (len(order) - stats.missing) and 0 <= stats.missing <= n


_FILLER = st.text(alphabet=st.characters(blacklist_categories=("Nd",), blacklist_characters="[]"), max_size=5)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), n=st.integers(min_value=1, max_value=25))
def test_parse_permutation_of_noisy_orderings(data: st.DataObject, n: int) -> None:
    """A permutation rendered with dropped, repeated and invented ids between filler text."""
    ids = data.draw(st.permutations(range(1, n + 1)))
    ids = data.draw(st.lists(st.sampled_from(ids), max_size=2 * n)) if data.draw(st.booleans()) else list(ids)
    invented = data.draw(st.lists(st.integers(min_value=n + 1, max_value=10**12) | st.just(0), max_size=4))
    for value in invented:
        ids.insert(data.draw(st.integers(min_value=0, max_value=len(ids))), value)
    text = "".join(f"{data.draw(_FILLER)}[{i}]" for i in ids) + data.draw(_FILLER)

    order, stats = parse_permutation(text, n)

    kept = list(dict.fromkeys(i - 1 for i in ids if 1 <= i <= n))
    assert sorted(order) == list(range(n))
    assert order == kept + sorted(set(range(n)) - set(kept))
    assert stats.out_of_range == len(invented)
    assert stats.duplicates == sum(1 <= i <= n for i in ids) - len(kept)
    assert stats.missing == n - len(kept)


# ---- RankGPT: sliding window ------------------------------------------------------------------


class ScriptedGenerator:
    """Whitespace tokens; returns scripted outputs in turn, or ranks by a 'score=N' tag when unscripted."""

    def __init__(self, outputs: list[str] | None = None, max_length: int = 100_000) -> None:
        self.outputs = list(outputs or [])
        self.prompts: list[str] = []
        self.max_length = max_length

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def prompt_tokens(self, prompt: str) -> int:
        return len(prompt.split())

    def truncate(self, text: str, max_tokens: int) -> tuple[str, bool]:
        words = text.split()
        return " ".join(words[:max_tokens]), len(words) > max_tokens

    def generate(self, prompt: str, max_new_tokens: int) -> str:
        self.prompts.append(prompt)
        if self.outputs:
            return self.outputs.pop(0)
        lines = [line for line in prompt.splitlines() if line.startswith("[") and "score=" in line]
        scores = {int(line[1 : line.index("]")]): int(line.split("score=")[1].split()[0]) for line in lines}
        return " > ".join(f"[{i}]" for i in sorted(scores, key=lambda i: -scores[i]))


def test_window_spans_go_back_to_front_and_always_cover_the_top() -> None:
    assert window_spans(5, 3, 2) == [(2, 5), (0, 3)]
    assert window_spans(50, 20, 10) == [(30, 50), (20, 40), (10, 30), (0, 20)]
    assert window_spans(25, 20, 10) == [(5, 25), (0, 15)]
    assert window_spans(10, 20, 10) == [(0, 10)]
    assert window_spans(0, 20, 10) == []


def test_sliding_window_applies_scripted_permutations_in_order() -> None:
    passages = [f"passage p{i}" for i in range(5)]
    generator = ScriptedGenerator(["[3] > [1] > [2]", "[3] > [2] > [1]"])
    reranker = RankGPTReranker(generator, window=3, step=2)
    assert reranker.order("q", passages) == [4, 1, 0, 2, 3]
    # window 1 saw p2, p3, p4 and made it p4, p2, p3; window 2 saw p0, p1, p4
    assert ["[1] passage p2", "[2] passage p3", "[3] passage p4"] == [line for line in generator.prompts[0].splitlines() if line.startswith("[")][:3]
    assert ["[1] passage p0", "[2] passage p1", "[3] passage p4"] == [line for line in generator.prompts[1].splitlines() if line.startswith("[")][:3]
    generator.outputs = ["[3] > [1] > [2]", "[3] > [2] > [1]"]
    assert reranker.score("q", passages) == [3.0, 4.0, 2.0, 1.0, 5.0] and not reranker.repairs


def test_sliding_window_with_a_perfect_judge_bubbles_the_best_to_the_top() -> None:
    scores = [7, 3, 11, 0, 5, 9, 2, 10, 1, 8, 4, 6]
    passages = [f"text score={s} end" for s in scores]
    reranker = RankGPTReranker(ScriptedGenerator(), window=4, step=2)
    order = reranker.order("q", passages)
    assert [scores[i] for i in order[:2]] == [11, 10]  # window - step passages are guaranteed at the top
    assert sorted(order) == list(range(len(scores)))


def test_rankgpt_repairs_bad_output_and_cuts_passages_to_the_context() -> None:
    generator = ScriptedGenerator(["[2] > [2] > [9]"], max_length=130)
    reranker = RankGPTReranker(generator, window=3, step=1, max_new_tokens=5)
    order = reranker.order("q", ["alpha " * 40, "beta " * 40, "gamma " * 40])
    assert order == [1, 0, 2]
    assert reranker.repairs == {"duplicates_id": 1, "out_of_range_id": 1, "missing_id": 2, "truncated_passage": 3}
    assert len(generator.prompts[0].split()) + 5 <= 130
    with pytest.raises(ValueError, match="does not fit the context"):
        RankGPTReranker(ScriptedGenerator(max_length=20), window=3).order("q", ["a", "b", "c"])
    assert RankGPTReranker(ScriptedGenerator()).step == 10


def test_rankgpt_end_to_end_on_a_tiny_model(tiny_lm_builder) -> None:
    model = tiny_lm_builder("llama", 1024)
    reranker = load_reranker(f"rankgpt:hf:{model}", window=3, step=2)
    scores = reranker.score(QUESTION, PASSAGES + ["a fourth passage about towers."])
    assert sorted(scores) == [1.0, 2.0, 3.0, 4.0]
    assert len(reranker.outputs) == 2  # windows (1, 4) and (0, 3)
    assert reranker.describe()["window"] == 3 and reranker.caveat().startswith("toy-sized LM")


# ---- factory ----------------------------------------------------------------------------------


def test_load_reranker_rejects_bad_specs(tiny_gpt2_dir: Path) -> None:
    with pytest.raises(ValueError, match="unknown re-ranker"):
        load_reranker("colbert:hf:x")
    with pytest.raises(ValueError, match="needs a backend"):
        load_reranker("upr")
    with pytest.raises(ValueError, match="transformers backend"):
        load_reranker("rankgpt:dirichlet")
    oracle = load_reranker("oracle")
    assert isinstance(oracle, OracleReranker) and oracle.backend.name == "dirichlet"
    assert isinstance(load_reranker(f"judge:hf:{tiny_gpt2_dir}", backend_options={"batch_tokens": 64}), JudgeReranker)


# ---- `uae eval --rerank` on real SQuAD questions ----------------------------------------------


def _squad_beir(folder: Path, n_questions: int = 20) -> Path:
    """A BEIR folder from the first SQuAD v1.1 dev article: its paragraphs, its first questions."""
    article = json.loads(SQUAD.read_text(encoding="utf-8"))["data"][0]
    corpus, queries, qrels = [], [], []
    for p, paragraph in enumerate(article["paragraphs"]):
        corpus.append({"_id": f"p{p}", "title": article["title"], "text": paragraph["context"]})
        for qa in paragraph["qas"]:
            if len(queries) < n_questions:
                answers = list(dict.fromkeys(a["text"] for a in qa["answers"]))
                queries.append({"_id": qa["id"], "text": qa["question"], "answers": answers})
                qrels.append(f"{qa['id']}\tp{p}\t1")
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus), encoding="utf-8")
    (folder / "queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in queries), encoding="utf-8")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(qrels) + "\n")
    return folder


@pytest.mark.skipif(not SQUAD.is_file(), reason=f"{SQUAD} not available")
def test_uae_eval_rerank_on_squad(tmp_path: Path, tiny_gpt2_dir: Path, tiny_encoder_dir: Path) -> None:
    from typer.testing import CliRunner

    from uae.cli import app

    data = _squad_beir(tmp_path / "squad")
    out = tmp_path / "eval"
    args = ["eval", str(data), "--out", str(out), "--base-model", str(tiny_encoder_dir), "--depth", "10",
            "--rerank", f"upr:hf:{tiny_gpt2_dir}", "--rerank", "oracle:dirichlet", "--rerank-depth", "5"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output

    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) >= {"bm25", "base", "teacher_oracle", "upr", "oracle"}
    assert set(metrics["upr"]) == set(metrics["base"])
    report = (out / "report.md").read_text()
    section = report.split("## Re-rankers")[1].split("\n## ")[0]
    upr_row = next(line for line in section.splitlines() if line.startswith("| `upr`"))
    cells = [c.strip() for c in upr_row.strip("|").split("|")]
    assert cells[2] == "20" and float(cells[3]) > 0 and float(cells[4]) >= float(cells[3])  # queries, p50, p95
    assert "truncated_passage" in cells[6]  # SQuAD paragraphs exceed the tiny model's 128-token context
    assert "quality numbers are meaningless" in cells[7]
    assert "upper bound" in next(line for line in section.splitlines() if line.startswith("| `oracle`"))


def test_uae_eval_rejects_a_rerank_depth_beyond_the_ranking(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from uae.cli import app

    result = CliRunner().invoke(app, ["eval", str(tmp_path), "--depth", "10", "--rerank", "oracle", "--rerank-depth", "50"])
    assert result.exit_code == 2 and "--rerank-depth" in result.output
