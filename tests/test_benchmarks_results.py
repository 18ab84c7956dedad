"""Table 4 reference figures (checked against the seed text), the results table's deltas, the chart."""
from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd
import pytest

from med42_utils.benchmarks import results as br

SEED = Path("/work/shared/seeds/med42-v2-paper.txt")


def _seed_rows() -> dict[str, list[float]]:
    here = Path(__file__).resolve().parents[1]
    for cand in (here.parent / "shared" / "seeds" / "med42-v2-paper.txt", SEED):
        if cand.is_file():
            text = cand.read_text()
            break
    else:  # no ../shared: the verbatim Table 4 excerpt packaged with the code (tests/test_reference_figures.py)
        from med42_utils.reference import TABLE4

        text = TABLE4.read_text(encoding="utf-8")
    rows = {}
    for line in text.splitlines():
        cells = [re.sub(r"<[^>]+>|\*", "", c).strip() for c in line.split("\t")]
        if len(cells) == 9:
            rows[cells[0]] = cells[1:]
    return rows


def test_table4_columns_match_the_seed_header():
    rows = _seed_rows()
    assert tuple(rows["Model"][:7]) == br.TABLE4_COLUMNS and rows["Model"][7] == "Avg."


@pytest.mark.parametrize("model", list(br.PAPER_TABLE4))
def test_reference_figures_are_the_papers(model):
    seed = _seed_rows()[model]
    assert [float(x) for x in seed] == list(br.PAPER_TABLE4[model])


def test_reference_rows_follow_the_base_model():
    assert br.reference_rows("Llama3-8B-Instruct") == ("Llama3-8B-Instruct", "Med42-Llama3-8B", True)
    assert br.reference_rows("Llama3.1-70B-Instruct") == ("Llama3.1-70B-Instruct", "Med42-Llama3.1-70B", True)
    assert br.reference_rows("tiny-llama3")[2] is False
    with pytest.raises(KeyError, match="no Table 4 row 'GPT-5'"):
        br.paper_score("GPT-5", "MMLU")


def test_results_table_deltas():
    scores = {
        "base": {"med42_medqa_4options": {"acc": 0.50}, "med42_toxigen": {"acc": 0.70}},
        "dpo_round3": {"med42_medqa_4options": {"acc": 0.65}, "med42_toxigen": {"acc": 0.80}},
    }
    t = br.results_table(scores, "Llama3-8B-Instruct", chance={"med42_medqa_4options": 0.25, "med42_toxigen": 0.5})
    assert list(t.index) == ["MedQA", "ToxiGen", "Avg."]
    m = t.loc["MedQA"]
    assert m["chance"] == 25.0 and m["base"] == 50.0 and m["dpo_round3"] == 65.0
    assert m["paper Llama3-8B-Instruct"] == 61.6 and m["paper Med42-Llama3-8B"] == 62.8
    assert m["base - paper base"] == pytest.approx(50.0 - 61.6, abs=0.06)
    assert m["dpo_round3 - paper Med42"] == pytest.approx(65.0 - 62.8, abs=0.06)
    assert m["our gain - paper gain"] == pytest.approx(15.0 - 1.2, abs=0.06)
    assert t.loc["Avg.", "base"] == pytest.approx(60.0)
    with pytest.raises(ValueError, match="no scores"):
        br.results_table({}, "Llama3-8B-Instruct")


def test_bar_chart_writes_png(tmp_path):
    scores = {"base": {"med42_medqa_4options": {"acc": 0.5, "n": 6}}, "sft": {"med42_medqa_4options": {"acc": 4 / 6, "n": 6}}}
    t = br.results_table(scores, "tiny-llama3", chance={"med42_medqa_4options": 0.25})
    fig = br.bar_chart(t, tmp_path / "c.png")
    assert (tmp_path / "c.png").stat().st_size > 1000
    labels = [x.get_text() for x in fig.axes[0].get_legend().get_texts()]
    assert sorted(labels) == sorted(["base", "sft", "chance"]), "tiny: no paper bars"
    assert not any(math.isnan(v) for v in t["base"])
    from matplotlib.container import BarContainer

    bars = [c for c in fig.axes[0].containers if isinstance(c, BarContainer)]
    assert len(bars) == 2 and all(b.errorbar is not None for b in bars), "each stage's bar carries its interval"
    t8 = br.results_table(scores, "Llama3-8B-Instruct")
    labels = [x.get_text() for x in br.bar_chart(t8).axes[0].get_legend().get_texts()]
    assert "paper Med42-Llama3-8B" in labels


def test_binomial_ci_is_wilson():
    low, high = br.binomial_ci(3, 6)
    assert (low, high) == pytest.approx((0.1876, 0.8124), abs=1e-4)  # (p + z^2/2n) / (1 + z^2/n) -/+ half-width
    assert br.binomial_ci(0, 6)[0] == 0.0 and br.binomial_ci(0, 6)[1] > 0.3, "0/6 is not 'certainly 0%'"
    assert br.binomial_ci(30, 60)[1] - br.binomial_ci(30, 60)[0] < high - low, "more questions, narrower interval"
    with pytest.raises(ValueError, match="k=7, n=6"):
        br.binomial_ci(7, 6)


def test_tiny_table_has_n_and_intervals_and_no_paper_deltas():
    scores = {
        "sft": {"med42_medqa_4options": {"acc": 0.5, "n": 6}, "med42_toxigen": {"acc": 1 / 6, "n": 6}},
        "dpo_round3": {"med42_medqa_4options": {"acc": 0.5, "n": 6}, "med42_toxigen": {"acc": 1.0, "n": 6}},
    }
    t = br.results_table(scores, "tiny-llama3", chance={"med42_medqa_4options": 0.25, "med42_toxigen": 0.5})
    assert not [c for c in t.columns if "paper" in c or " - " in c]
    assert t.loc["MedQA", "n"] == 6 and t.loc["Avg.", "n"] == 12
    assert (t.loc["MedQA", "sft low"], t.loc["MedQA", "sft high"]) == (18.8, 81.2)
    assert math.isnan(t.loc["Avg.", "sft low"]), "no binomial interval for a mean of tasks"
    shown = br.display_table(t)
    assert shown.loc["MedQA", "sft [95% CI]"] == "50.0 [18.8, 81.2]" and shown.loc["Avg.", "sft [95% CI]"] == "33.3"
    assert list(shown.columns) == ["n", "chance", "sft [95% CI]", "dpo_round3 [95% CI]"]
    apart = br.stages_apart(t, ["sft", "dpo_round3"])
    assert not apart.loc["MedQA", "scores differ"] and not apart.loc["MedQA", "intervals disjoint"]
    assert apart.loc["ToxiGen", "scores differ"] and apart.loc["ToxiGen", "intervals disjoint"]  # 1/6 vs 6/6


def test_choice_shift_compares_shift_with_the_gap():
    before = {"med42_medqa_4options": [[-10.0, -2.0, -5.0], [-1.0, -1.5, -9.0]]}
    after = {"med42_medqa_4options": [[-9.0, -3.0, -5.0], [-2.0, -1.0, -9.0]]}
    r = br.choice_shift(before, after).loc["MedQA"]
    assert r["questions"] == 2 and r["picks changed"] == 1
    assert r["mean relative shift (nats)"] == pytest.approx((2 / 3 + 5 / 9) / 2, abs=0.01)
    common = br.choice_shift(before, {"med42_medqa_4options": [[x - 3 for x in q] for q in before["med42_medqa_4options"]]})
    assert common.loc["MedQA", "mean relative shift (nats)"] == 0 and common.loc["MedQA", "picks changed"] == 0, \
        "moving every choice alike cannot change a pick"
    assert r["mean best-vs-runner-up gap (nats)"] == pytest.approx((3.0 + 0.5) / 2)
    with pytest.raises(ValueError, match="med42_medqa_4options"):
        br.choice_shift(before, {"med42_medqa_4options": after["med42_medqa_4options"][:1]})


# ---------------------------------------------------------------- paired tests, length bias, per subject
def test_mcnemar_exact_binomial_by_hand():
    a = [1] * 1 + [0] * 7 + [1] * 5 + [0] * 3   # 1 question only a right, 7 only b right, 5 both, 3 neither
    b = [0] * 1 + [1] * 7 + [1] * 5 + [0] * 3
    r = br.mcnemar(a, b)
    assert (r["only first right"], r["only second right"], r["questions"]) == (1, 7, 16)
    assert r["method"] == "exact binomial"
    assert r["p"] == pytest.approx(2 * (1 + 8) / 2 ** 8)  # two-sided P(X <= 1 | 8 fair coins)


def test_mcnemar_chi_square_and_no_discordance():
    from scipy.stats import chi2

    a, b = [1] * 10 + [0] * 30, [0] * 10 + [1] * 30
    r = br.mcnemar(a, b)
    assert r["method"].startswith("chi-square")
    assert r["p"] == pytest.approx(chi2.sf((30 - 10 - 1) ** 2 / 40, 1))
    assert br.mcnemar([1, 0, 1], [1, 0, 1])["p"] == 1.0
    with pytest.raises(ValueError, match="same questions"):
        br.mcnemar([1, 0], [1])


def _sample(doc_id, lls, conts, gold, subject="anatomy", delim=" "):
    import numpy as np

    pick = int(np.argmax(lls))
    norm = int(np.argmax(np.asarray(lls) / np.asarray([len(c) for c in conts])))
    return {"doc_id": doc_id, "doc": {"subject": subject}, "target": gold, "arguments": [("ctx", delim + c) for c in conts],
            "filtered_resps": [(x, False) for x in lls], "acc": float(pick == gold), "acc_norm": float(norm == gold)}


def test_question_records_length_bias_and_subjects():
    conts = ["Measles", "Chickenpox in children", "Rubella"]
    samples = [_sample(1, [-8.0, -20.0, -9.0], conts, 1, "anatomy"),        # picks the shortest; right is the longest
               _sample(0, [-3.0, -30.0, -30.0], conts, 0, "virology")]      # right and shortest, by both metrics
    recs = br.question_records(samples, token_count=lambda t: len(t.split()))
    assert [r["doc_id"] for r in recs] == [0, 1]
    assert recs[1]["pick"] == 0 and recs[1]["pick_norm"] == 1  # -20/22 chars beats -8/7
    assert recs[1]["tokens"] == [1, 3, 1] and recs[1]["acc"] == 0 and recs[1]["acc_norm"] == 1
    lb = br.length_bias({"base": {"med42_mmlu_medical": recs}})
    assert lb.loc["MMLU", "base acc pick shortest %"] == 100.0
    assert lb.loc["MMLU", "base acc_norm pick shortest %"] == 50.0
    assert lb.loc["MMLU", "right answer shortest %"] == 50.0
    same = [dict(r, tokens=[2, 2, 2]) for r in recs]  # equally long options: nothing to learn about length
    assert br.length_bias({"base": {"med42_taught_facts": same}}).empty
    subj = br.per_subject({"base": {"med42_mmlu_medical": recs}}, "med42_mmlu_medical")
    assert subj.loc["virology", "base"] == 100.0 and subj.loc["anatomy", "base"] == 0.0
    assert subj.loc["pooled", "base"] == 50.0 and subj.loc["pooled", "n"] == 2


def test_paired_tests_and_verdict_match_questions_by_id():
    conts = ["a", "b"]
    first = [_sample(i, [0.0, -1.0], conts, 1) for i in range(10)]              # always wrong
    second = [_sample(i, [-1.0, 0.0], conts, 1) for i in range(10)]             # always right
    q = {"base": {"med42_taught_facts": br.question_records(first)}, "sft": {"med42_taught_facts": br.question_records(second)}}
    paired = br.paired_tests(q, "base", "sft")
    row = paired.loc["Taught facts"]
    assert (row["only base right"], row["only sft right"]) == (0, 10)
    assert row["p"] == pytest.approx(2 / 2 ** 10)
    table = br.results_table({"base": {"med42_taught_facts": {"acc": 0.0, "n": 10}},
                              "sft": {"med42_taught_facts": {"acc": 1.0, "n": 10}}}, "tiny-llama3")
    v = br.stage_verdict(table, paired, "base", "sft")
    assert v.loc["Taught facts", "sft vs that interval"] == "above"
    assert v.loc["Taught facts", "McNemar p"] == pytest.approx(0.002, abs=1e-4)
    assert pd.isna(table.loc["Avg.", "base"])  # the taught facts are no Table 4 column: not in its Avg.


def test_metrics_table_names_both_metrics():
    m = br.metrics_table({"base": {"med42_medmcqa": {"acc": 0.0, "acc_norm": 1 / 3}},
                          "sft": {"med42_medmcqa_letters": {"acc": 0.5, "acc_norm": 0.5}}})
    assert m.loc["MedMCQA", ("base", "acc")] == 0.0 and m.loc["MedMCQA", ("base", "acc_norm")] == 33.3
    assert m.loc["MedMCQA (letters)", ("sft", "acc")] == 50.0


# ---------------------------------------------------------------- Table 4 lookups, Wilson intervals, the results table
def _wilson(k: int, n: int, confidence: float) -> tuple[float, float]:
    """Wilson's score interval written out: (p + z^2/2n) / (1 + z^2/n) -/+ z / (1 + z^2/n) * sqrt(p(1-p)/n + z^2/4n^2)."""
    from scipy.stats import norm

    z, p = norm.ppf(0.5 + confidence / 2), k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def test_paper_score_reads_the_average_and_takes_the_benchmarks_own_spellings():
    assert br.paper_score("Med42-Llama3.1-70B", "Avg.") == 81.2
    assert br.paper_score("Llama3-8B-Instruct", "USMLE") == 60.4     # the paper's "UsMLE" column
    assert br.paper_score("Llama3-8B-Instruct", "PubMedQA") == 69.8  # the paper's "PubmedQA" column
    assert br.paper_score("Llama3-8B-Instruct", "UsMLE") == 60.4
    with pytest.raises(KeyError, match=re.escape("rows typed in: Llama3-8B-Instruct, Llama3.1-8B-Instruct, Med42-Llama3-8B")):
        br.paper_score("GPT-5", "MMLU")


def test_a_model_outside_table4_or_a_med42_row_is_shown_against_the_8b_rows_not_exactly():
    assert br.reference_rows("tiny-llama3") == ("Llama3-8B-Instruct", "Med42-Llama3-8B", False)
    assert br.reference_rows("Med42-Llama3-70B") == ("Llama3-8B-Instruct", "Med42-Llama3-8B", False)


def test_binomial_ci_of_one_question_its_confidence_and_no_empty_sample():
    z = 1.959964
    assert br.binomial_ci(1, 1) == pytest.approx((1 / (1 + z * z), 1.0), abs=1e-6)  # 1/1 right: [20.7%, 100%]
    assert br.binomial_ci(3, 6, 0.9) == pytest.approx(_wilson(3, 6, 0.9), abs=1e-9)
    assert br.binomial_ci(3, 6, 0.9) == pytest.approx((0.2212, 0.7788), abs=1e-4)  # narrower than 95%'s (0.1876, 0.8124)
    assert br.binomial_ci(5, 40, 0.99) == pytest.approx(_wilson(5, 40, 0.99), abs=1e-9)
    with pytest.raises(ValueError, match="k=0, n=0"):
        br.binomial_ci(0, 0)


def test_results_table_paper_columns_follow_the_paper_argument_when_given():
    scores = {"base": {"med42_medqa_4options": {"acc": 0.5}}}
    assert not [c for c in br.results_table(scores, "Llama3-8B-Instruct", paper=False).columns if "paper" in c]
    tiny = br.results_table(scores, "tiny-llama3", paper=True)  # forced at tiny: against the 8B rows
    assert tiny.loc["MedQA", "paper Llama3-8B-Instruct"] == 61.6 and tiny.loc["MedQA", "paper Med42-Llama3-8B"] == 62.8
    assert tiny.loc["MedQA", "base - paper base"] == pytest.approx(50.0 - 61.6)


def test_results_table_deltas_take_the_first_and_the_last_of_three_stages():
    scores = {s: {"med42_medqa_4options": {"acc": a}} for s, a in (("base", 0.5), ("sft", 0.6), ("dpo_round3", 0.7))}
    m = br.results_table(scores, "Llama3-8B-Instruct").loc["MedQA"]
    assert m["base - paper base"] == pytest.approx(50.0 - 61.6)
    assert m["dpo_round3 - paper Med42"] == pytest.approx(70.0 - 62.8) and "sft - paper Med42" not in m
    assert m["our gain - paper gain"] == pytest.approx((70.0 - 50.0) - (62.8 - 61.6))


def test_results_table_a_task_a_stage_did_not_run_is_nan_without_interval():
    scores = {"base": {"med42_medqa_4options": {"acc": 0.5, "n": 6}, "med42_toxigen": {"acc": 0.5, "n": 6}},
              "sft": {"med42_medqa_4options": {"acc": 4 / 6, "n": 6}}}
    t = br.results_table(scores, "tiny-llama3")
    assert t.loc["ToxiGen", "base"] == 50.0 and math.isnan(t.loc["ToxiGen", "sft"])
    assert math.isnan(t.loc["ToxiGen", "sft low"]) and math.isnan(t.loc["ToxiGen", "sft high"])
    assert t.loc["ToxiGen", "n"] == 6 and t.loc["Avg.", "n"] == 12
    assert t.loc["Avg.", "sft"] == pytest.approx(66.7), "the mean over the tasks the stage ran"


def test_results_table_intervals_at_the_confidence_asked_and_none_for_the_average():
    t = br.results_table({"sft": {"med42_medqa_4options": {"acc": 0.5, "n": 6}}}, "tiny-llama3", confidence=0.9)
    assert (t.loc["MedQA", "sft low"], t.loc["MedQA", "sft high"]) == (22.1, 77.9)  # 3/6 at 90%, by hand above
    assert math.isnan(t.loc["Avg.", "sft low"]) and math.isnan(t.loc["Avg.", "sft high"])


def test_interval_columns_need_both_bounds():
    t = pd.DataFrame(columns=["n", "sft", "sft low", "sft high", "dpo", "dpo low", "base", "base high"])
    assert br.interval_columns(t) == ["sft"]


def _tiny_table() -> pd.DataFrame:
    scores = {"sft v2": {"med42_medqa_4options": {"acc": 0.5, "n": 6}, "med42_taught_facts": {"acc": 0.25}},
              "dpo": {"med42_medqa_4options": {"acc": 4 / 6, "n": 6}, "med42_taught_facts": {"acc": 0.75}}}
    return br.results_table(scores, "tiny-llama3", chance={"med42_medqa_4options": 0.25, "med42_taught_facts": 0.5})


def test_display_table_shows_counts_as_integers_chance_as_is_and_a_stage_name_with_a_space_once():
    shown = br.display_table(_tiny_table())
    assert list(shown.columns) == ["n", "chance", "sft v2 [95% CI]", "dpo [95% CI]"]
    assert str(shown["n"].dtype) == "Int64"
    assert shown.loc["MedQA", "n"] == 6 and shown.loc["Avg.", "n"] == 6 and pd.isna(shown.loc["Taught facts", "n"])
    assert list(shown["chance"]) == [25.0, 50.0, 25.0]
    assert shown.loc["MedQA", "sft v2 [95% CI]"] == "50.0 [18.8, 81.2]"
    assert shown.loc["Taught facts", "dpo [95% CI]"] == "75.0", "no n, no interval"
    assert br.display_table(_tiny_table(), confidence=0.9).columns[-1] == "dpo [90% CI]"


def test_display_table_of_chosen_columns_keeps_the_benchmarks():
    t = _tiny_table()[["dpo", "dpo low", "dpo high"]]
    shown = br.display_table(t)
    assert list(shown.index) == ["MedQA", "Taught facts", "Avg."]
    assert shown.loc["MedQA", "dpo [95% CI]"].startswith("66.7 [")


def _interval_table(rows: dict[str, tuple]) -> pd.DataFrame:
    """{task: (a, a low, a high, b, b low, b high)} as results_table lays them out."""
    cols = ["a", "a low", "a high", "b", "b low", "b high"]
    return pd.DataFrame.from_dict(rows, orient="index", columns=cols)


def test_stages_apart_touching_intervals_are_not_disjoint_and_the_average_is_no_task():
    t = _interval_table({"touch": (40.0, 30.0, 50.0, 60.0, 50.0, 70.0),      # a high == b low
                         "touch back": (60.0, 50.0, 70.0, 40.0, 30.0, 50.0),  # b high == a low
                         "apart": (40.0, 30.0, 49.9, 60.0, 50.0, 70.0),
                         "Avg.": (50.0, float("nan"), float("nan"), 50.0, float("nan"), float("nan"))})
    apart = br.stages_apart(t, ["a", "b"])
    assert list(apart.index) == ["touch", "touch back", "apart"]
    assert list(apart["intervals disjoint"]) == [False, False, True]
    assert list(apart["lowest"]) == [40.0, 40.0, 40.0] and list(apart["highest"]) == [60.0, 60.0, 60.0]
    without_avg = br.stages_apart(t.drop(index="Avg."), ["a", "b"])
    assert list(without_avg["intervals disjoint"]) == [False, False, True]


def test_stages_apart_a_stage_without_intervals_only_differs_in_score():
    t = br.results_table({"base": {"med42_medqa_4options": {"acc": 0.0, "n": 6}},
                          "sft": {"med42_medqa_4options": {"acc": 1.0}}}, "tiny-llama3")
    for stages in (["base", "sft"], ["sft", "base"]):
        r = br.stages_apart(t, stages).loc["MedQA"]
        assert r["scores differ"] and not r["intervals disjoint"] and (r["lowest"], r["highest"]) == (0.0, 100.0)


def test_choice_shift_counts_every_changed_pick_and_takes_two_choices_or_one():
    before = {"med42_pubmedqa": [[-1.0, -2.0], [-3.0, -1.0], [-1.0, -4.0]],
              "med42_taught_facts": [[-2.0], [-5.0]]}
    after = {"med42_pubmedqa": [[-2.0, -1.0], [-1.0, -3.0], [-1.0, -5.0]],
             "med42_taught_facts": [[-1.0], [-5.0]]}
    s = br.choice_shift(before, after)
    p = s.loc["PubMedQA"]
    assert p["picks changed"] == 2, "the first two questions changed their pick, the last did not"
    assert p["mean best-vs-runner-up gap (nats)"] == 2.0  # gaps 1, 2, 3
    assert p["mean relative shift (nats)"] == pytest.approx(round((1 + 2 + 0.5) / 3, 2))  # |delta - mean|: 1, 2, 0.5
    assert p["mean relative shift (nats)"] == 1.17
    one = s.loc["Taught facts"]
    assert one["mean best-vs-runner-up gap (nats)"] == math.inf and one["picks changed"] == 0, "one choice: no runner-up"
    assert one["mean relative shift (nats)"] == 0.0


def test_choice_shift_rounds_to_hundredths_of_a_nat():
    r = br.choice_shift({"med42_medmcqa": [[0.0, -1 / 3, -2.0]]}, {"med42_medmcqa": [[0.0, -1 / 3 - 1 / 3, -2.0]]}).loc["MedMCQA"]
    assert r["mean best-vs-runner-up gap (nats)"] == 0.33
    assert r["mean relative shift (nats)"] == 0.15  # delta (0, -1/3, 0): |delta - mean| = (1/9, 2/9, 1/9), mean 4/27


def test_results_table_warns_of_nothing():
    import warnings

    scores = {"base": {"med42_medqa_4options": {"acc": 0.5, "n": 6}}, "sft": {"med42_medqa_4options": {"acc": 0.6, "n": 6}}}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. pandas' deprecations, which a notebook would print under the table
        t = br.results_table(scores, "Llama3-8B-Instruct", chance={"med42_medqa_4options": 0.25})
    assert t.loc["Avg.", "sft"] == 60.0


# ---------------------------------------------------------------- per question records, metrics, length bias, subjects
def test_question_records_read_lm_evals_dict_arguments_a_doc_without_subject_and_without_acc_norm():
    s = _sample(3, [-6.0, -5.0], ["Aspirin", "Heparin sodium"], 0, delim="")
    s["arguments"] = [{"arg_0": "ctx", "arg_1": " Aspirin"}, {"arg_0": "ctx", "arg_1": " Heparin sodium"}]  # newer lm-eval logs
    s["doc"] = {"question": "?"}
    del s["acc_norm"]
    (rec,) = br.question_records([s], token_count=len)
    assert rec["subject"] == "" and rec["lls"] == [-6.0, -5.0] and rec["tokens"] == [7, 14]
    assert rec["pick"] == 1 and rec["pick_norm"] == 1  # -5/14 > -6/7
    assert rec["acc"] == 0 and rec["acc_norm"] == 0, "without acc_norm in the sample, acc_norm is acc"
    s["acc"] = 1.0
    assert br.question_records([s])[0]["acc_norm"] == 1


def test_metrics_table_names_its_column_levels():
    m = br.metrics_table({"base": {"med42_medmcqa": {"acc": 0.25, "acc_norm": 0.5}}})
    assert list(m.columns.names) == ["model", "metric"]
    assert list(m.columns) == [("base", "acc"), ("base", "acc_norm")]


def test_length_bias_skips_a_task_without_length_differences_and_rounds_shares_to_a_tenth():
    def rec(gold, pick, pick_norm, tokens):
        return {"gold": gold, "pick": pick, "pick_norm": pick_norm, "tokens": tokens}

    # shortest options: 0, 0, 1 (the last question has none: equally long options)
    base = [rec(0, 0, 1, [1, 2]), rec(1, 1, 0, [1, 2]), rec(1, 0, 1, [3, 2]), rec(0, 0, 0, [5, 5])]
    sft = [dict(r, pick=r["pick_norm"], pick_norm=r["pick"]) for r in base]
    lb = br.length_bias({"base": {"med42_taught_facts": [rec(0, 0, 0, [2, 2])], "med42_pubmedqa": base},
                         "sft": {"med42_taught_facts": [rec(0, 0, 0, [2, 2])], "med42_pubmedqa": sft}})
    assert list(lb.index) == ["PubMedQA"]
    r = lb.loc["PubMedQA"]
    assert r["n"] == 3 and r["right answer shortest %"] == 66.7
    assert r["base acc pick shortest %"] == 33.3 and r["base acc_norm pick shortest %"] == 66.7
    assert r["sft acc pick shortest %"] == 66.7 and r["sft acc_norm pick shortest %"] == 33.3


def test_per_subject_rounds_to_a_tenth_of_a_percent():
    recs = [{"subject": "anatomy", "acc": a} for a in (1, 0, 0)] + [{"subject": "virology", "acc": 1}]
    subj = br.per_subject({"base": {"med42_mmlu_medical": recs}}, "med42_mmlu_medical")
    assert subj.loc["anatomy", "base"] == 33.3 and subj.loc["pooled", "base"] == 50.0 and subj.loc["anatomy", "n"] == 3


# ---------------------------------------------------------------- McNemar, paired tests, the verdict
def test_mcnemar_switches_to_chi_square_at_exactly_exact_below_discordant_questions():
    from scipy.stats import binomtest, chi2

    a, b = [1] * 8 + [0] * 16 + [1], [0] * 8 + [1] * 16 + [1]   # b=8, c=16: 24 discordant (and one both right)
    r = br.mcnemar(a, b)
    assert r["method"] == "exact binomial" and r["p"] == pytest.approx(binomtest(8, 24, 0.5).pvalue)
    a, b = a + [1], b + [0]                                       # b=9, c=16: 25 discordant
    r = br.mcnemar(a, b)
    assert r["method"] == "chi-square, continuity corrected"
    assert r["p"] == pytest.approx(chi2.sf((16 - 9 - 1) ** 2 / 25, 1)) and r["p"] == pytest.approx(0.2301393, abs=1e-6)
    assert br.mcnemar(a, b, exact_below=26)["method"] == "exact binomial"


def test_mcnemar_without_discordant_questions_says_so_and_refuses_no_questions():
    r = br.mcnemar([1, 0, 1], [1, 0, 1])
    assert (r["p"], r["method"], r["questions"]) == (1.0, "no discordant questions", 3)
    with pytest.raises(ValueError, match="McNemar needs at least one question"):
        br.mcnemar([], [])


def test_paired_tests_skip_a_task_the_second_model_did_not_answer_and_give_accuracies_to_a_tenth():
    conts = ["a", "b"]
    right, wrong = [-1.0, 0.0], [0.0, -1.0]   # gold is 1
    first = {"med42_medmcqa": br.question_records([_sample(0, right, conts, 1)]),
             "med42_medqa_4options": br.question_records([_sample(i, right if i == 0 else wrong, conts, 1) for i in range(3)])}
    second = {"med42_medqa_4options": br.question_records([_sample(i, wrong if i == 0 else right, conts, 1) for i in range(4)])}
    paired = br.paired_tests({"base": first, "sft": second}, "base", "sft")
    assert list(paired.index) == ["MedQA"], "MedMCQA: the second model has no answers to pair"
    row = paired.loc["MedQA"]
    assert (row["base acc %"], row["sft acc %"]) == (33.3, 66.7), "over the 3 common questions (doc 3 unpaired)"
    assert (row["only base right"], row["only sft right"], row["questions"]) == (1, 2, 3)
    assert row["p"] == 1.0 and row["method"] == "exact binomial"


def _verdict_table(rows: dict[str, tuple]) -> pd.DataFrame:
    """{task: (n, base, base low, base high, sft)}, results_table's layout."""
    return pd.DataFrame.from_dict(rows, orient="index", columns=["n", "base", "base low", "base high", "sft"])


def test_stage_verdict_above_below_inside_with_the_bounds_inside():
    nan = float("nan")
    t = _verdict_table({"MedQA": (6, 50.0, 18.8, 81.2, 90.0), "MMLU": (6, 50.0, 18.8, 81.2, 10.0),
                        "MedMCQA": (6, 50.0, 18.8, 81.2, 81.2), "ToxiGen": (6, 50.0, 18.8, 81.2, 18.8),
                        "Taught facts": (nan, 50.0, nan, nan, 75.0), "PubMedQA": (6, 50.0, 18.8, 81.2, 50.0),
                        "Avg.": (24, 50.0, 40.0, 60.0, 99.0)})
    paired = pd.DataFrame({"p": [0.001953125, 0.5]}, index=["MedQA", "MMLU"])
    v = br.stage_verdict(t, paired, "base", "sft")
    assert list(v.index) == ["MedQA", "MMLU", "MedMCQA", "ToxiGen", "PubMedQA"], "no interval, no verdict; Avg. is no task"
    assert list(v["sft vs that interval"]) == ["above", "below", "inside", "inside", "inside"]
    assert list(v["n"]) == [6, 6, 6, 6, 6] and v.loc["MedQA", "base 95% interval"] == "[18.8, 81.2]"
    assert v.loc["MedQA", "McNemar p"] == 0.002 and v.loc["MMLU", "McNemar p"] == 0.5
    assert math.isnan(v.loc["PubMedQA", "McNemar p"]), "no paired test for that task"
    v2 = br.stage_verdict(t.drop(index="Avg."), paired, "base", "sft")
    assert list(v2.index) == list(v.index)
    v90 = br.stage_verdict(t, paired, "base", "sft", confidence=0.9)  # a table built at 90% says so
    assert v90.loc["MedQA", "base 90% interval"] == "[18.8, 81.2]" and "base 95% interval" not in v90


# ---------------------------------------------------------------- the chart: what a reader reads off it
def _chart_table() -> pd.DataFrame:
    scores = {"base": {"med42_medqa_4options": {"acc": 0.5, "n": 6}, "med42_toxigen": {"acc": 0.0, "n": 6}},
              "sft": {"med42_medqa_4options": {"acc": 4 / 6, "n": 6}, "med42_toxigen": {"acc": 1.0, "n": 6}}}
    return br.results_table(scores, "Llama3-8B-Instruct", chance={"med42_medqa_4options": 0.25, "med42_toxigen": 0.5})


@pytest.fixture
def close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def _bars(fig) -> dict:
    from matplotlib.container import BarContainer

    return {c.get_label(): c for c in fig.axes[0].containers if isinstance(c, BarContainer)}


@pytest.mark.usefixtures("close_figures")
def test_bar_chart_bars_are_the_scores_side_by_side_around_each_benchmark_with_the_papers_hatched():
    t = _chart_table()
    fig = br.bar_chart(t)
    ax = fig.axes[0]
    assert [x.get_text() for x in ax.get_xticklabels()] == ["MedQA", "ToxiGen"] and list(ax.get_xticks()) == [0, 1]
    bars = _bars(fig)
    series = ["base", "sft", "paper Llama3-8B-Instruct", "paper Med42-Llama3-8B"]  # no deltas, no n, no chance bars
    assert list(bars) == series
    for i, s in enumerate(series):
        assert [p.get_height() for p in bars[s].patches] == [t.loc["MedQA", s], t.loc["ToxiGen", s]]
        for x, p in enumerate(bars[s].patches):  # four bars of 0.2 filling [x - 0.4, x + 0.4] in the table's order
            assert p.get_width() == pytest.approx(0.2)
            assert p.get_x() + p.get_width() / 2 == pytest.approx(x - 0.3 + 0.2 * i)
            assert p.get_hatch() == ("//" if s.startswith("paper") else None), "the paper's bars are hatched, ours plain"
    legend = [x.get_text() for x in ax.get_legend().get_texts()]
    assert sorted(legend) == sorted(series + ["chance"])
    fig.canvas.draw()
    box = ax.get_legend().get_window_extent().transformed(ax.transAxes.inverted())
    assert box.x0 > 1 and box.y1 <= 1, "the legend stands right of the axes, over no bar"
    chance = [c for c in ax.collections if c.get_label() == "chance"]
    assert len(chance) == 1 and chance[0].get_offsets().tolist() == [[0.0, 25.0], [1.0, 50.0]]  # on each group's centre
    assert ax.get_ylim() == (0.0, 100.0) and ax.get_ylabel() == "zero-shot accuracy (%)"
    assert ax.get_title() == "Our models vs the paper's Table 4"
    assert br.bar_chart(t, title="8b: our models vs Table 4").axes[0].get_title() == "8b: our models vs Table 4"
    fig2 = br.bar_chart(t.drop(index="Avg."))  # a table without its average row draws the same
    assert [x.get_text() for x in fig2.axes[0].get_xticklabels()] == ["MedQA", "ToxiGen"]


@pytest.mark.usefixtures("close_figures")
def test_bar_chart_error_bars_span_each_stages_interval_and_none_for_the_papers():
    t = _chart_table()
    bars = _bars(br.bar_chart(t))
    for s in ("base", "sft"):
        segments = [seg.tolist() for seg in bars[s].errorbar.lines[2][0].get_segments()]
        for (x, task), seg in zip(enumerate(["MedQA", "ToxiGen"]), segments):
            centre = x - 0.3 + 0.2 * ("base", "sft").index(s)
            assert seg == [[pytest.approx(centre), t.loc[task, f"{s} low"]], [pytest.approx(centre), t.loc[task, f"{s} high"]]]
    assert t.loc["ToxiGen", "base low"] == 0.0 and t.loc["ToxiGen", "sft high"] == 100.0  # 0/6 and 6/6: bars end at 0 and 100
    assert bars["paper Med42-Llama3-8B"].errorbar is None


@pytest.mark.usefixtures("close_figures")
def test_bar_chart_a_score_just_outside_its_rounded_interval_gets_no_negative_error_bar():
    t = _chart_table()
    t.loc["MedQA", "base low"], t.loc["MedQA", "sft high"] = 50.1, 66.6  # e.g. bounds rounded elsewhere than the score
    bars = _bars(br.bar_chart(t))
    assert bars["base"].errorbar.lines[2][0].get_segments()[0].tolist()[0][1] == 50.0  # from the score, not below it
    assert bars["sft"].errorbar.lines[2][0].get_segments()[0].tolist()[1][1] == 66.7


@pytest.mark.usefixtures("close_figures")
def test_bar_chart_writes_the_png_at_120_dpi_and_leaves_the_sessions_backend_and_figures_alone(tmp_path):
    import matplotlib
    import matplotlib.pyplot as plt
    from PIL import Image

    t = _chart_table()
    before = matplotlib.get_backend()
    try:
        matplotlib.use("svg")  # stands in for a notebook's inline backend
        shown = br.bar_chart(t)  # returned to show: a pyplot figure of the session
        assert plt.get_fignums() == [shown.number]
        written = br.bar_chart(t, tmp_path / "c.png")  # as 05's stage writes results.png in the kernel
        assert matplotlib.get_backend() == "svg" and plt.get_fignums() == [shown.number]
        assert [p.get_height() for p in written.axes[0].patches] == [p.get_height() for p in shown.axes[0].patches]
    finally:
        matplotlib.use(before)
    with Image.open(tmp_path / "c.png") as im:
        assert im.info["dpi"] == pytest.approx((120, 120), abs=0.05)  # stored as whole pixels per metre
