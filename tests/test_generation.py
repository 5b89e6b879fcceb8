"""Answer quality: Token F1 / EM / QASPER F1, the readers, and `uae eval --generate` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from uae.cli import app
from uae.evaluation.answer_quality import answer_scores, exact_match, qasper_answer_f1, read_generations, token_f1
from uae.evaluation.readers import ExtractiveReader, HFReader, OpenAIReader, ReaderRequest, load_reader

# ---- metrics ---------------------------------------------------------------------------------


def test_token_f1_on_normalised_tokens() -> None:
    # "the cat sat" -> [cat, sat]; "A cat sat down." -> [cat, sat, down]: P = 1, R = 2/3
    assert token_f1("the cat sat", "A cat sat down.") == pytest.approx(0.8)
    assert token_f1("cat cat", "cat") == pytest.approx(2 * 0.5 * 1 / 1.5)  # repeated tokens count once each side


def test_empty_predictions_score_zero_as_in_squad_v11_and_qasper() -> None:
    assert token_f1("", "paris") == 0.0
    assert token_f1("", "") == 0.0
    assert token_f1("the", "a") == 0.0  # both normalise to nothing


def test_exact_match_after_normalisation() -> None:
    assert exact_match("The Eiffel Tower!", "eiffel   tower") == 1.0
    assert exact_match("Eiffel", "eiffel tower") == 0.0


def test_scores_take_the_best_gold_answer() -> None:
    assert answer_scores("2000 metres", ["about 2,000 m", "2000 metres high", "2000 metres"]) == {"token_f1": 1.0, "em": 1.0}
    scores = answer_scores("in paris", ["Paris, France", "london"])
    assert scores["token_f1"] == pytest.approx(0.5) and scores["em"] == 0.0
    with pytest.raises(ValueError, match="without a gold reference"):
        answer_scores("x", [])


def test_qasper_answer_f1_is_max_token_f1_over_references() -> None:
    # QASPER references: extractive spans joined with ", ", free-form text, or "Yes"/"No".
    assert qasper_answer_f1("Yes", ["no", "yes"]) == 1.0
    # [bert, and, elmo] vs [bert, elmo, glove]: P = R = 2/3 -> 2/3; vs [elmo]: P = 1/3, R = 1 -> 1/2
    assert qasper_answer_f1("BERT and ELMo", ["BERT, ELMo, GloVe", "ELMo"]) == pytest.approx(2 / 3)


# ---- the extractive reader -------------------------------------------------------------------


def test_extractive_reader_picks_the_best_matching_sentence() -> None:
    passages = ("Kappa has snow all year. Kappa is a mountain 2000 metres high.", "Iota is a small island with 300 people.")
    assert ExtractiveReader(mode="sentence").answer("How high is Kappa?", passages) == "Kappa is a mountain 2000 metres high."
    assert ExtractiveReader().answer("How high is Kappa?", passages) == "a mountain 2000 metres"
    assert ExtractiveReader().answer("How many people live on Iota?", passages) == "is a small island with 300"  # "is" is not in this question


def test_extractive_reader_uses_corpus_idf_after_fit_and_prefers_earlier_ties() -> None:
    reader = ExtractiveReader(mode="sentence")
    # "river" is rare in the corpus, "city" is everywhere: the river sentence wins after fit.
    passages = ("The city has a bridge.", "The river is long.")
    reader.fit(["city"] * 50 + ["river", "city river"])
    assert reader.answer("Which city river?", passages) == "The river is long."
    assert ExtractiveReader(mode="sentence").answer("unrelated words?", passages) == "The city has a bridge."
    assert ExtractiveReader().answer("anything?", ()) == ""


def test_load_generator_specs() -> None:
    assert isinstance(load_reader("extractive"), ExtractiveReader)
    assert load_reader("extractive:mode=sentence").mode == "sentence"
    with pytest.raises(ValueError, match="does not use a prompt"):
        load_reader("extractive", prompt="{context} {question}")
    with pytest.raises(ValueError, match="unknown generator"):
        load_reader("t5:small")
    with pytest.raises(ValueError, match="must contain \\{question\\}"):
        load_reader("hf:whatever", prompt="{context} only")


# ---- LM readers on tiny random models ----------------------------------------------------------

LONG = " ".join(["the mountain kappa rises above the island of iota"] * 40)


def test_hf_reader_fits_the_context_and_marks_truncation(tiny_gpt2_dir: Path) -> None:
    reader = HFReader(str(tiny_gpt2_dir), max_new_tokens=8)
    short = ReaderRequest("How high is Kappa?", ("Kappa is 2000 metres high.",))
    long = ReaderRequest("How high is Kappa?", (LONG, "Kappa is 2000 metres high."))
    prompt, truncated = reader.fit_prompt(long)
    assert truncated and reader.generator.prompt_tokens(prompt) + 8 <= reader.generator.max_length
    assert "Question: How high is Kappa?" in prompt
    answers = reader.generate([short, long])
    assert [a.truncated for a in answers] == [False, True]
    assert all(isinstance(a.text, str) and "\n" not in a.text for a in answers)
    assert reader.describe()["max_new_tokens"] == 8


def test_openai_reader_through_the_testing_server(tiny_gpt2_dir: Path) -> None:
    from uae.testing import serve

    with serve(tiny_gpt2_dir) as server:
        reader = load_reader(f"openai:{server.base_url}", max_new_tokens=4, concurrency=2, backoff=0.01)
        assert isinstance(reader, OpenAIReader) and reader.name == f"openai:{tiny_gpt2_dir}"
        answers = reader.generate([ReaderRequest("How high is Kappa?", ("Kappa is 2000 metres high.",)),
                                   ReaderRequest("How high is Kappa?", (LONG,))])
        assert [a.truncated for a in answers] == [False, True]  # the long prompt got HTTP 400 and was cut
        assert all(isinstance(a.text, str) and "\n" not in a.text for a in answers)
        assert server.state.requests >= 3


def test_openai_chat_reader_through_the_testing_server_with_a_key(tiny_gpt2_dir: Path, monkeypatch) -> None:
    from uae.testing import serve

    monkeypatch.setenv("OPENAI_API_KEY", "sk-chat-test")
    requests = [ReaderRequest("How high is Kappa?", ("Kappa is 2000 metres high.",)), ReaderRequest("How high is Kappa?", (LONG,))]
    with serve(tiny_gpt2_dir, api_key="sk-chat-test") as server:
        chat = load_reader(f"openai:{server.base_url},chat=true", max_new_tokens=4, backoff=0.01)
        completions = load_reader(f"openai:{server.base_url}", max_new_tokens=4, backoff=0.01)
        assert chat.describe()["endpoint"] == "/chat/completions"
        answers = chat.generate(requests)
        assert [a.truncated for a in answers] == [False, True]  # the long prompt got HTTP 400 and was cut
        assert [a.text for a in answers] == [a.text for a in completions.generate(requests)]  # one user message = the prompt


# ---- `uae eval --generate` end to end ----------------------------------------------------------


def _beir(folder: Path) -> Path:
    corpus = [("k1", "Kappa", "Kappa is a mountain 2000 metres high. It has snow."),
              ("i1", "Iota", "Iota is a small island. About 300 people live on Iota."),
              ("l1", "Lambda", "Lambda is a river. It is 40 kilometres long."),
              ("m1", "Mu", "Mu is a town with a castle built in 1204.")]
    queries = [("q1", "How high is Kappa?", ["2000 metres"]), ("q2", "How many people live on Iota?", ["300", "about 300"]),
               ("q3", "How long is the Lambda river?", ["40 kilometres"]), ("q4", "When was the castle in Mu built?", ["1204"])]
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"_id": i, "title": t, "text": x}) + "\n" for i, t, x in corpus))
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": i, "text": t, "answers": a}) + "\n" for i, t, a in queries))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tk1\t1\nq2\ti1\t1\nq3\tl1\t1\nq4\tm1\t1\n")
    return folder


def _eval(data: Path, out: Path, encoder: Path, *extra: str):
    args = ["eval", str(data), "--out", str(out), "--base-model", str(encoder), "--depth", "4", *extra]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads((out / "metrics.json").read_text())


def test_uae_eval_generate_extractive_scores_each_system_and_resumes(tmp_path: Path, tiny_encoder_dir: Path) -> None:
    data, out = _beir(tmp_path / "data"), tmp_path / "eval"
    metrics = _eval(data, out, tiny_encoder_dir, "--generate", "extractive", "--generate-k", "1")
    assert set(metrics) == {"bm25", "base", "teacher_oracle"}
    records = read_generations(out / "generations" / "bm25.jsonl")
    assert list(records) == ["q1", "q2", "q3", "q4"]
    assert records["q1"]["passage_ids"] == ["k1"] and records["q1"]["answer"] == "a mountain 2000 metres"
    assert records["q1"]["token_f1"] == pytest.approx(0.8) and records["q1"]["em"] == 0.0
    expected = sum(r["token_f1"] for r in records.values()) / 4
    assert metrics["bm25"]["token_f1"] == pytest.approx(expected)
    assert metrics["bm25"]["em"] == pytest.approx(sum(r["em"] for r in records.values()) / 4)
    report = (out / "report.md").read_text()
    assert "## Answer quality" in report and "extractive reader, not an LLM" in report and "token_f1" in report

    # A rerun answers nothing again; a hand-edited answer survives, proving it was reused.
    lines = (out / "generations" / "bm25.jsonl").read_text().splitlines()
    edited = json.loads(lines[0]) | {"answer": "hand edited", "token_f1": 0.0}
    (out / "generations" / "bm25.jsonl").write_text("\n".join([json.dumps(edited), *lines[1:], '{"query_id": "q4", "ans']) + "\n")
    _eval(data, out, tiny_encoder_dir, "--generate", "extractive", "--generate-k", "1")
    again = read_generations(out / "generations" / "bm25.jsonl")
    assert again["q1"]["answer"] == "hand edited" and again["q4"] == records["q4"]
    assert "Answers generated in this run: 0" in (out / "report.md").read_text()

    # Another k changes the reader's key: every query is answered again.
    _eval(data, out, tiny_encoder_dir, "--generate", "extractive", "--generate-k", "2")
    assert all(len(r["passage_ids"]) == 2 for r in read_generations(out / "generations" / "bm25.jsonl").values())
    assert read_generations(out / "generations" / "bm25.jsonl")["q1"]["answer"] != "hand edited"


def test_uae_eval_generate_hf_with_a_tiny_random_model(tmp_path: Path, tiny_encoder_dir: Path, tiny_gpt2_dir: Path) -> None:
    data, out = _beir(tmp_path / "data"), tmp_path / "eval"
    metrics = _eval(data, out, tiny_encoder_dir, "--generate", f"hf:{tiny_gpt2_dir}", "--generate-k", "2", "--max-new-tokens", "4",
                    "--generate-prompt", "C: {context}\nQ: {question}\nA:")
    assert all(0.0 <= metrics[s]["token_f1"] <= 1.0 and "em" in metrics[s] for s in metrics)
    record = read_generations(out / "generations" / "base.jsonl")["q1"]
    assert record["reader"] == f"hf:{tiny_gpt2_dir}" and len(record["passage_ids"]) == 2
    assert "C: {context}" in (out / "report.md").read_text()


def test_uae_eval_generate_openai_through_the_testing_server(tmp_path: Path, tiny_encoder_dir: Path, tiny_gpt2_dir: Path) -> None:
    from uae.testing import serve

    data, out = _beir(tmp_path / "data"), tmp_path / "eval"
    with serve(tiny_gpt2_dir) as server:
        metrics = _eval(data, out, tiny_encoder_dir, "--generate", f"openai:{server.base_url}", "--max-new-tokens", "3")
        assert server.state.requests >= 4
    assert set(metrics["base"]) >= {"token_f1", "em", "ndcg@10"}
    assert read_generations(out / "generations" / "bm25.jsonl")["q2"]["reader"] == f"openai:{tiny_gpt2_dir}"


def test_uae_eval_generate_refuses_a_bad_prompt(tmp_path: Path, tiny_encoder_dir: Path) -> None:
    result = CliRunner().invoke(app, ["eval", str(_beir(tmp_path / "data")), "--out", str(tmp_path / "e"), "--base-model",
                                      str(tiny_encoder_dir), "--generate", "extractive", "--generate-prompt", "{context}"])
    assert result.exit_code == 2 and "does not use a prompt" in result.output
