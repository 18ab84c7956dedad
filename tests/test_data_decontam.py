"""Decontamination: a planted benchmark question is removed, a near-miss is kept."""
from __future__ import annotations

from datasets import Dataset

from med42_utils.data.decontam import add_contamination_column, build_index, contaminating, question_tokens

LONG_Q = ("A 3-week-old boy has projectile non-bilious vomiting after every feed and a palpable olive-shaped mass "
          "in the epigastrium. What is the most likely diagnosis?\nOptions:\nA. Duodenal atresia\n"
          "B. Hypertrophic pyloric stenosis\nC. Malrotation\nD. Reflux")
SHORT_Q = "Koplik spots are seen in\nOptions:\nA. Mumps\nB. Rubella\nC. Measles\nD. Chickenpox"
BENCH = {"medqa": [LONG_Q], "medmcqa": [SHORT_Q, "Which of the following is true?\nA. x\nB. y"]}


def test_planted_long_question_is_removed_even_with_reordered_options():
    idx = build_index(BENCH, n=8, threshold=0.5)
    row = ("A 3-week-old boy has projectile non-bilious vomiting after every feed and a palpable olive-shaped mass in "
           "the epigastrium. What is the most likely diagnosis?\n\nA. Reflux\nB. Malrotation\nC. Duodenal atresia\n"
           "D. Hypertrophic pyloric stenosis\nAnswer: D")
    assert contaminating(row, idx) == [("medqa", 0)]


def test_near_miss_sharing_a_phrase_is_kept():
    idx = build_index(BENCH, n=8, threshold=0.5)
    near_miss = ("A 3-week-old girl has bilious vomiting and a distended abdomen on the second day of life. "
                 "What is the most likely diagnosis? Answer: malrotation with volvulus.")
    assert contaminating(near_miss, idx) == []


def test_short_stem_needs_its_options():
    idx = build_index(BENCH, n=8, threshold=0.5)
    assert question_tokens(SHORT_Q, 8)[-1] == "chickenpox"  # short stem: options included, label dropped
    assert "options" not in question_tokens(SHORT_Q, 8)
    assert contaminating("Koplik spots are seen in\nA. Mumps\nB. Rubella\nC. Measles\nD. Chickenpox\nAnswer: C", idx) == [("medmcqa", 0)]
    # a generic short stem alone does not flag every row that contains it
    assert contaminating("Which of the following is true? The heart has four chambers.", idx) == []


def test_threshold_and_n_from_params_matter():
    q = {"b": ["one two three four five six seven eight nine ten eleven twelve"]}
    text = "one two three four five six seven eight nine ten and more words"
    assert contaminating(text, build_index(q, n=4, threshold=0.5)) == [("b", 0)]   # 7 of 9 grams
    assert contaminating(text, build_index(q, n=4, threshold=0.9)) == []
    assert contaminating(text, build_index(q, n=11, threshold=0.5)) == []          # 0 of 2 grams


def test_column_names_the_benchmarks():
    idx = build_index(BENCH, n=8, threshold=0.5)
    ds = Dataset.from_dict({"messages": [
        [{"role": "system", "content": LONG_Q}, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
        [{"role": "user", "content": LONG_Q}, {"role": "assistant", "content": "B"}],
    ]})
    out = add_contamination_column(ds, idx, num_proc=None)
    assert out["contaminated_by"] == ["", "medqa"]  # system prompts are not compared
    assert out["contaminated_question"] == ["", "medqa:0"]


def test_pubmedqa_sft_keeps_the_rows_outside_the_official_test_split(tmp_path):
    """Decontamination compares against the 500 test questions only, so the other labelled rows stay for SFT."""
    import json
    from types import SimpleNamespace

    from med42_utils.benchmarks.data import benchmark_questions
    from med42_utils.data import adapters
    from med42_utils.data.loading import SAMPLES_DIR
    from med42_utils.data.text import conversation_text

    sft = [json.loads(x) for x in (SAMPLES_DIR / "pubmedqa.jsonl").read_text().splitlines() if x.strip()]
    # the same labelled rows, exported from the Hub copy, with a test split naming half of them
    rows = [dict(r, pubid=80000000 + i) for i, r in enumerate(sft)]
    (tmp_path / "pubmedqa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    test = {str(r["pubid"]): r["final_decision"] for r in rows[: len(rows) // 2]}
    (tmp_path / "pubmedqa_test_ground_truth.json").write_text(json.dumps(test))
    params = SimpleNamespace(eval=SimpleNamespace(data_source="local", data_dir=str(tmp_path)))

    questions = benchmark_questions(params, ["pubmedqa"])
    assert len(questions["pubmedqa"]) == len(test)
    idx = build_index(questions, n=8, threshold=0.5)
    flagged = [bool(contaminating(conversation_text(adapters.pubmedqa(r)), idx)) for r in sft]
    assert flagged == [i < len(rows) // 2 for i in range(len(rows))]


# 13 words: 10 word 4-grams
QUESTION_13 = "neonatal jaundice in the first twenty four hours of life is always pathological"


def test_a_text_holding_exactly_the_threshold_share_is_removed_one_gram_less_is_kept():
    """'at least threshold': 5 of the question's 10 4-grams at threshold 0.5 is contamination; 4 of 10 is not."""
    idx = build_index({"b": [QUESTION_13]}, n=4, threshold=0.5)
    toks = QUESTION_13.split()
    assert idx.sizes[("b", 0)] == 10
    at = " ".join(toks[:8]) + " and other words entirely"     # grams 0-4 of the question: 5 of 10
    under = " ".join(toks[:7]) + " and other words entirely"  # grams 0-3: 4 of 10
    assert contaminating(at, idx) == [("b", 0)]
    assert contaminating(under, idx) == []
    # the same with tiny's params (n=8, threshold 0.5): a 17-word question has 10 8-grams
    q = QUESTION_13 + " otherwise by a paediatrician"
    idx8 = build_index({"b": [q]}, n=8, threshold=0.5)
    assert idx8.sizes[("b", 0)] == 10
    assert contaminating(" ".join(q.split()[:12]) + " unrelated tail", idx8) == [("b", 0)]
    assert contaminating(" ".join(q.split()[:11]) + " unrelated tail", idx8) == []


def test_the_index_travels_to_map_workers_whole():
    """Dataset.map(num_proc) ships the index to its workers with dill: it arrives with every field, and finds
    the same questions."""
    import pickle

    import dill

    idx = build_index(BENCH, n=8, threshold=0.5)
    for copy in (pickle.loads(pickle.dumps(idx)), dill.loads(dill.dumps(idx))):
        assert copy.__dict__ == idx.__dict__ and copy.digest
        assert contaminating("Koplik spots are seen in\nA. Mumps\nB. Rubella\nC. Measles\nD. Chickenpox", copy) == [("medmcqa", 0)]


def test_a_question_shorter_than_n_must_appear_whole_and_one_of_two_words_is_skipped():
    """Under n words (stem + options) there are no n-grams: the whole question, normalized, must be in the row."""
    bench = {"b": ["Koplik spots indicate measles", "Virchow triad", "Which cranial nerve?"]}
    idx = build_index(bench, n=8, threshold=0.5)
    assert idx.questions == {"b": 2} and not idx.grams  # 'Virchow triad' is too short to mean anything
    assert contaminating("Q: koplik spots indicate MEASLES. A: yes", idx) == [("b", 0)]
    assert contaminating("Koplik spots indicate mumps, not measles", idx) == []   # the first 3 words are not enough
    assert contaminating("which cranial", idx) == []                               # shorter than the question
    assert contaminating("Which cranial nerve?", idx) == [("b", 2)]                # exactly 3 words: found
    assert contaminating("Virchow triad", idx) == []


def test_a_text_of_exactly_n_words_is_compared():
    q = {"b": ["one two three four"]}
    assert contaminating("One two three four", build_index(q, n=4, threshold=1.0)) == [("b", 0)]


def test_a_row_holding_questions_of_two_benchmarks_names_both():
    idx = build_index(BENCH, n=8, threshold=0.5)
    ds = Dataset.from_dict({"messages": [[{"role": "user", "content": SHORT_Q.replace("Options:\n", "") + "\n\n" + LONG_Q},
                                          {"role": "assistant", "content": "C, then B"}]]})
    out = add_contamination_column(ds, idx, num_proc=None)
    assert out["contaminated_by"] == ["medmcqa,medqa"] and out["contaminated_question"] == ["medmcqa:0"]


def test_a_stem_of_at_least_n_words_is_compared_without_its_options():
    assert question_tokens(LONG_Q, 8)[-1] == "diagnosis"
    assert "atresia" not in question_tokens(LONG_Q, 8)
    eight = "one two three four five six seven eight\nA. alpha\nB. beta"
    assert question_tokens(eight, 8) == "one two three four five six seven eight".split()
    assert question_tokens(eight, 9) == "one two three four five six seven eight a alpha b beta".split()


def test_malformed_benchmarks_are_errors_naming_what_came():
    import pytest

    from med42_utils.data.decontam import BenchmarkInputError

    with pytest.raises(BenchmarkInputError, match="must be a dict name -> list of str, got list"):
        build_index(["q"], n=8, threshold=0.5)
    with pytest.raises(BenchmarkInputError, match="benchmark 'b': questions must be a list of str, got str"):
        build_index({"b": "q"}, n=8, threshold=0.5)
    with pytest.raises(BenchmarkInputError, match="benchmark 'b' question 1 is int, not str"):
        build_index({"b": ["q", 3]}, n=8, threshold=0.5)


def test_ngrams_are_every_window_of_n_words_and_a_shorter_text_is_one_gram_of_itself():
    from med42_utils.data.text import ngrams

    assert ngrams([], 3) == set()
    assert ngrams(["koplik", "spots"], 3) == {"koplik spots"}
    assert ngrams(["koplik"], 3) == {"koplik"}
    assert ngrams(["koplik", "spots", "measles"], 3) == {"koplik spots measles"}
    assert ngrams(["a", "b", "c", "d"], 3) == {"a b c", "b c d"}
    assert ngrams(["a", "b", "a", "b"], 2) == {"a b", "b a"}  # a set: a repeated window counts once
