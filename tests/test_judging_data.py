"""Questions loader, answer generation with stand-in stage models, and the model card's Elo table."""
from __future__ import annotations

import json
import re

import pytest

from med42_utils.judging.card import CARD_ELO, CARD_QUESTIONS
from med42_utils.judging.questions import BUNDLED, load_questions
from med42_utils.paths import repo_root

CARD = repo_root().parent / "shared" / "seeds" / "med42-v2-model-card.md"


def test_bundled_questions():
    qs, dropped = load_questions("bundled", reference_field="reference")
    assert len(qs) >= 12 and dropped == {}
    assert len({q["id"] for q in qs}) == len(qs)
    assert all(len(q["question"]) > 20 and q["reference"] for q in qs)
    rows = [json.loads(line) for line in BUNDLED.read_text().splitlines()]
    assert all(set(r) == {"id", "question", "reference", "specialty"} for r in rows)
    assert load_questions("bundled", num=3)[0][2]["id"] == qs[2]["id"]


def test_local_questions_drop_and_count(tmp_path):
    f = tmp_path / "q.jsonl"
    rows = [{"question": "What is sepsis?"}, {"question": "  "}, {"question": "what is sepsis?"},
            {"question": "How is gout treated?"}]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    qs, dropped = load_questions("local", str(f))
    assert [q["question"] for q in qs] == ["What is sepsis?", "How is gout treated?"]
    assert dropped == {"empty question": 1, "duplicate question": 1}
    assert all(q["id"].startswith("q-") and q["reference"] is None for q in qs)
    qs2, _ = load_questions("local", str(tmp_path))  # a folder of .jsonl works too
    assert [q["id"] for q in qs2] == [q["id"] for q in qs]


def test_question_errors_name_the_fix(tmp_path):
    f = tmp_path / "q.jsonl"
    f.write_text(json.dumps({"prompt": "x"}) + "\n")
    with pytest.raises(KeyError, match="no field 'question'.*judge.question_field"):
        load_questions("local", str(f))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_questions("local", str(tmp_path / "missing.jsonl"))
    with pytest.raises(ValueError, match="needs judge.questions_path"):
        load_questions("hub", None)


def test_answers_use_card_sampling_and_resume(tiny_params, tiny_model_path, tmp_path, monkeypatch):
    from med42_utils.judging import answers as A

    seen = {}
    real = A._generate_transformers

    def spy(params, model_path, questions, batch_size):
        seen["n"] = seen.get("n", 0) + len(questions)
        yield from real(params, model_path, questions, batch_size)

    monkeypatch.setattr(A, "_generate_transformers", spy)
    qs, _ = load_questions("bundled", num=3)
    info = A.generate_answers(tiny_params, "base", tiny_model_path, qs, tmp_path)
    assert info["generated"] == 3 and info["backend"] == "transformers"
    path = tmp_path / "base.jsonl"
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["question_id"] for r in recs] == [q["id"] for q in qs]
    assert all(0 < r["new_tokens"] <= tiny_params.judge.sampling.max_new_tokens for r in recs)
    # torn last line: that answer is redone, the others kept
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 10])
    info2 = A.generate_answers(tiny_params, "base", tiny_model_path, qs, tmp_path)
    assert info2 == {**info2, "cached": 2, "generated": 1} and seen["n"] == 4
    assert len(A.read_answers(path)) == 3 and path.read_text().count("\n") == 3


def test_answer_prompt_is_the_card_system_prompt(tiny_model_path):
    from transformers import AutoTokenizer

    from med42_utils.chat import SYSTEM_PROMPT, render
    from med42_utils.judging.answers import _conv

    conv = _conv("What is sepsis?")
    assert conv[0] == {"role": "system", "content": SYSTEM_PROMPT}
    text = render(AutoTokenizer.from_pretrained(tiny_model_path), conv, add_generation_prompt=True)
    assert SYSTEM_PROMPT in text and text.rstrip().endswith("<|start_header_id|>assistant<|end_header_id|>")


def test_card_params_match_the_seed(tiny_params):
    from med42_utils.params import load_params

    for size in ("8b", "70b"):
        s = load_params(size).judge
        assert (s.sampling.temperature, s.sampling.top_k, s.sampling.top_p, s.sampling.max_new_tokens) == (0.4, 150, 0.75, 512)
        assert s.model == "prometheus-eval/prometheus-8x7b-v2.0" and s.num_questions == CARD_QUESTIONS
        assert (s.elo.k, s.elo.scale, s.elo.base, s.elo.initial) == (4, 400, 10, 1000) and s.elo.bootstrap_rounds >= 1000
    # tiny samples plainly on purpose (params/tiny.yaml says why): the card's settings made its SFT model
    # answer every open question with "Answer: B."
    t = tiny_params.judge.sampling
    assert (t.temperature, t.top_k, t.top_p) == (1.0, 0, 1.0)


@pytest.mark.skipif(not CARD.is_file(), reason="seed model card not in this checkout")
def test_card_elo_table_matches_the_seed():
    text = CARD.read_text(encoding="utf-8")
    block = text.split("#### Elo Ratings", 1)[1].split("####", 1)[0]
    rows = re.findall(r"^\|\**([^|*]+?)\**\|\s*(\d+)\s*\|$", block, re.M)
    assert {name.strip(): int(v) for name, v in rows} == CARD_ELO
    assert "4,000 carefully curated" in text and "Prometheus-8x7b-v2.0" in text
    assert "temperature=0.4" in text and "top_k=150" in text and "top_p=0.75" in text and "max_new_tokens=512" in text


def test_cached_answers_and_judgments_follow_what_made_them(tmp_path):
    """An interrupted run keeps its caches; changed sampling (or a retrained model, or another judge) redoes them."""
    from med42_utils.judging.stage import CACHE_KEY, JUDGMENTS, refresh_caches
    from med42_utils.params import load_params

    params = load_params("tiny")

    def fill():
        (tmp_path / "answers").mkdir(exist_ok=True)
        (tmp_path / "answers" / "base.jsonl").write_text('{"question_id": "q1", "answer": "x"}\n')
        (tmp_path / JUDGMENTS).write_text("{}\n")

    fill()
    assert "no record" in refresh_caches(params, "cachekey", tmp_path)  # caches of unknown origin are not trusted
    assert not (tmp_path / "answers").exists() and (tmp_path / CACHE_KEY).is_file()
    fill()
    assert refresh_caches(params, "cachekey", tmp_path) is None  # same models and settings: resume
    assert (tmp_path / "answers" / "base.jsonl").is_file() and (tmp_path / JUDGMENTS).is_file()
    hotter = load_params("tiny", {"judge.sampling.temperature": 0.7})
    why = refresh_caches(hotter, "cachekey", tmp_path)
    assert "sampling" in why and not (tmp_path / "answers").exists() and not (tmp_path / JUDGMENTS).exists()
    fill()
    other_judge = load_params("tiny", {"judge.reference_metric": "token_f1"})
    assert "judge" in refresh_caches(other_judge, "cachekey", tmp_path)
