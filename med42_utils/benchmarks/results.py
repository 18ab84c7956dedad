"""Our scores next to the paper's Table 4: reference rows, deltas, and a bar chart."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

# Table 4 columns, in the paper's order and spelling, and the task that reproduces each (labelled as the
# benchmarks' authors spell them: the paper's "UsMLE" and "PubmedQA" are USMLE and PubMedQA).
TABLE4_COLUMNS = ("MMLU-Pro", "MMLU", "MedMCQA", "MedQA", "UsMLE", "PubmedQA", "ToxiGen")
PAPER_SPELLING = {"USMLE": "UsMLE", "PubMedQA": "PubmedQA"}
TASK_COLUMN = {
    "med42_mmlu_pro_health": "MMLU-Pro",
    "med42_mmlu_medical": "MMLU",
    "med42_medmcqa": "MedMCQA",
    "med42_medqa_4options": "MedQA",
    "med42_usmle_sa": "USMLE",
    "med42_pubmedqa": "PubMedQA",
    "med42_toxigen": "ToxiGen",
    "med42_taught_facts": "Taught facts",      # course task (tiny): not a Table 4 column
}
TABLE4_LABELS = tuple(c for t, c in TASK_COLUMN.items() if t != "med42_taught_facts")
# The same exam rows in the letter framing (run.LETTER_TASKS).
LETTER_COLUMN = {f"{t}_letters": f"{c} (letters)" for t, c in TASK_COLUMN.items()
                 if t in ("med42_mmlu_medical", "med42_mmlu_pro_health", "med42_medmcqa", "med42_medqa_4options", "med42_usmle_sa")}


def column(task: str) -> str:
    """The table label of a task: its Table 4 column, 'Taught facts', or '<column> (letters)'."""
    return TASK_COLUMN.get(task) or LETTER_COLUMN.get(task) or task

# Zero-shot accuracy (%) typed in from the paper's Table 4 (../shared/seeds/med42-v2-paper.txt) for the
# Llama 3 / 3.1 Instruct base models and the Med42-v2 models trained from them; the last value is Avg.
# tests/test_benchmarks_results.py checks every figure against the seed text.
PAPER_TABLE4: dict[str, tuple[float, ...]] = {
    "Llama3-8B-Instruct": (48.2, 72.9, 59.7, 61.6, 60.4, 69.8, 78.5, 64.4),
    "Llama3.1-8B-Instruct": (49.9, 73.4, 58.4, 62.0, 68.2, 76.2, 82.3, 67.2),
    "Med42-Llama3-8B": (54.3, 75.8, 61.3, 62.8, 67.0, 68.4, 81.5, 67.3),
    "Med42-Llama3.1-8B": (54.2, 73.6, 59.7, 63.2, 69.9, 72.2, 83.8, 68.1),
    "Llama3-70B-Instruct": (64.2, 86.0, 72.0, 78.9, 83.6, 71.8, 87.6, 77.7),
    "Llama3.1-70B-Instruct": (64.6, 87.4, 71.9, 78.6, 93.4, 76.6, 91.3, 80.5),
    "Med42-Llama3-70B": (64.4, 87.1, 73.2, 79.1, 83.8, 78.8, 90.3, 79.5),
    "Med42-Llama3.1-70B": (66.1, 86.8, 72.4, 80.4, 94.5, 77.6, 90.4, 81.2),
}


def paper_score(model: str, column: str) -> float:
    if model not in PAPER_TABLE4:
        raise KeyError(f"no Table 4 row '{model}'; rows typed in: {', '.join(PAPER_TABLE4)}")
    return PAPER_TABLE4[model][(*TABLE4_COLUMNS, "Avg.").index(PAPER_SPELLING.get(column, column))]


def reference_rows(display_name: str) -> tuple[str, str, bool]:
    """(paper base row, paper Med42 row, exact) for params.model.display_name.

    'Llama3-70B-Instruct' -> ('Llama3-70B-Instruct', 'Med42-Llama3-70B', True). A model not in Table 4
    (size tiny) is shown against the 8B rows, with exact=False.
    """
    if display_name in PAPER_TABLE4 and not display_name.startswith("Med42"):
        return display_name, "Med42-" + display_name.removesuffix("-Instruct"), True
    return "Llama3-8B-Instruct", "Med42-Llama3-8B", False


def binomial_ci(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for k correct answers out of n (scipy's binomtest), as fractions."""
    from scipy.stats import binomtest

    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"a binomial interval needs 0 <= k <= n and n > 0; got k={k}, n={n}")
    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def results_table(scores: dict[str, dict[str, dict]], display_name: str, chance: dict[str, float] | None = None,
                  metric: str = "acc", paper: bool | None = None, confidence: float = 0.95) -> pd.DataFrame:
    """One row per task (Table 4 column names), accuracy in %.

    Columns: n (questions scored), chance, then for each evaluated stage its score and, where n is known,
    the Wilson interval `<stage> low` / `<stage> high`. With `paper` (default: only when our base model
    is a Table 4 row, i.e. 8b/70b) the paper's base and Med42 rows follow, with three deltas:
    first stage - paper base, last stage - paper Med42, and our gain (last - first) - the paper's gain.
    At tiny those deltas would be noise from a few questions, so they are left out.
    `scores` is {stage: {task: {"acc": fraction, "n": questions, ...}}} in evaluation order.
    """
    if not scores:
        raise ValueError("no scores to tabulate: evaluate at least one model")
    base_row, med42_row, exact = reference_rows(display_name)
    paper = exact if paper is None else paper
    stages = list(scores)
    tasks = [t for t in TASK_COLUMN if any(t in s for s in scores.values())]
    rows = []
    for t in tasks:
        col = TASK_COLUMN[t]
        r = {"benchmark": col}
        ns = {scores[s][t].get("n") for s in stages if t in scores[s]} - {None}
        if ns:
            r["n"] = max(ns)
        if chance:
            r["chance"] = 100 * chance[t]
        for s in stages:
            got = scores[s].get(t)
            r[s] = 100 * got[metric] if got else float("nan")
            if got and got.get("n"):
                low, high = binomial_ci(round(got[metric] * got["n"]), got["n"], confidence)
                r[f"{s} low"], r[f"{s} high"] = 100 * low, 100 * high
        if paper and col in TABLE4_LABELS:
            r[f"paper {base_row}"] = paper_score(base_row, col)
            r[f"paper {med42_row}"] = paper_score(med42_row, col)
            first, last = r[stages[0]], r[stages[-1]]
            r[f"{stages[0]} - paper base"] = first - r[f"paper {base_row}"]
            r[f"{stages[-1]} - paper Med42"] = last - r[f"paper {med42_row}"]
            r["our gain - paper gain"] = (last - first) - (r[f"paper {med42_row}"] - r[f"paper {base_row}"])
        rows.append(r)
    df = pd.DataFrame(rows).set_index("benchmark")
    avg = df[df.index.isin(TABLE4_LABELS)].mean(numeric_only=True)  # Table 4's Avg.: the unweighted mean over its tasks
    for c in df.columns:
        if c == "n":
            avg[c] = df.loc[df.index.isin(TABLE4_LABELS), c].sum()
        elif c.endswith((" low", " high")):
            avg[c] = float("nan")  # an interval of a mean of tasks is not a binomial one
    df.loc["Avg."] = avg
    return df.round(1)


def interval_columns(table: pd.DataFrame) -> list[str]:
    """The stage columns of a results table that carry a `<stage> low` / `<stage> high` interval."""
    return [c for c in table.columns if f"{c} low" in table.columns and f"{c} high" in table.columns]


def display_table(table: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """The results table to read: each stage as 'score [low, high]' (its interval), n and chance kept."""
    out = pd.DataFrame(index=table.index)
    with_ci = interval_columns(table)
    for c in table.columns:
        if c.endswith((" low", " high")) and c.rsplit(" ", 1)[0] in with_ci:
            continue
        if c in with_ci:
            out[f"{c} [{confidence:.0%} CI]"] = [
                f"{v:.1f}" if pd.isna(lo) else f"{v:.1f} [{lo:.1f}, {hi:.1f}]"
                for v, lo, hi in zip(table[c], table[f"{c} low"], table[f"{c} high"])
            ]
        elif c == "n":
            out[c] = table[c].astype("Int64")
        else:
            out[c] = table[c]
    return out


def stages_apart(table: pd.DataFrame, stages: list[str]) -> pd.DataFrame:
    """Per task: do the stages' scores differ at all, and are any two stages' intervals disjoint?"""
    t = table.drop(index="Avg.", errors="ignore")
    rows = {}
    for task, r in t.iterrows():
        scores = [r[s] for s in stages]
        disjoint = any(
            r[f"{a} high"] < r[f"{b} low"] or r[f"{b} high"] < r[f"{a} low"]
            for i, a in enumerate(stages) for b in stages[i + 1:]
            if f"{a} low" in r and f"{b} low" in r
        )
        rows[task] = {"lowest": min(scores), "highest": max(scores), "scores differ": max(scores) > min(scores),
                      "intervals disjoint": disjoint}
    return pd.DataFrame.from_dict(rows, orient="index")


def choice_shift(before: dict[str, list[list[float]]], after: dict[str, list[list[float]]]) -> pd.DataFrame:
    """How far training moved each question's answer-choice log-likelihoods, against the margin it must overcome.

    `before`/`after` are {task: [[log-likelihood of each choice] per question]} of two stages on the same
    questions. Per task: the mean absolute change of a choice's log-likelihood relative to the question's other
    choices (nats; a shift common to all choices cannot change a pick), the mean gap between the
    before-stage's best and second-best choice (what a change must exceed to alter the pick), and how many
    picks changed. A pick changes only when the relative shift outweighs the gap.
    """
    import numpy as np

    rows = {}
    for task in before:
        if task not in after or len(after[task]) != len(before[task]):
            raise ValueError(f"choice log-likelihoods for '{task}' are missing or cover other questions in the second stage")
        shift, gap, changed = [], [], 0
        for b, a in zip(before[task], after[task]):
            b, a = np.asarray(b, dtype=float), np.asarray(a, dtype=float)
            delta = a - b
            shift.append(float(np.abs(delta - delta.mean()).mean()))
            top = np.sort(b)[::-1]
            gap.append(float(top[0] - top[1]) if len(top) > 1 else float("inf"))
            changed += int(a.argmax() != b.argmax())
        rows[column(task)] = {
            "questions": len(shift), "mean relative shift (nats)": round(float(np.mean(shift)), 2),
            "mean best-vs-runner-up gap (nats)": round(float(np.mean(gap)), 2), "picks changed": changed,
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def bar_chart(table: pd.DataFrame, path: Path | None = None, title: str = ""):
    """Grouped bars per benchmark: our stages (with their binomial intervals) and, at 8b/70b, the paper's two rows;
    chance as black ticks. Written to `path`, it is drawn without pyplot: the session's backend and its open figures
    are left alone (a notebook kernel keeps showing its plots inline)."""
    import numpy as np

    t = table.drop(index="Avg.", errors="ignore")
    series = [c for c in t.columns if c not in ("chance", "n") and " - " not in c and not c.endswith((" low", " high"))]
    with_ci = set(interval_columns(t))
    x = np.arange(len(t))
    width = 0.8 / len(series)
    size = (max(7, 1.3 * len(t)), 4)
    if path is not None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=size)
        ax = fig.subplots()
    else:
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=size)
    for i, c in enumerate(series):
        err = None
        if c in with_ci:  # the binomial interval as an error bar
            err = np.vstack([(t[c] - t[f"{c} low"]).clip(lower=0), (t[f"{c} high"] - t[c]).clip(lower=0)])
        ax.bar(x + i * width - 0.4 + width / 2, t[c], width, label=c, hatch="//" if c.startswith("paper") else None,
               yerr=err, error_kw={"elinewidth": 0.8, "capsize": 2, "ecolor": "0.3"})
    if "chance" in t:
        ax.scatter(x, t["chance"], marker="_", s=900, color="black", zorder=3, label="chance")
    ax.set_xticks(x, t.index, rotation=20)
    ax.set_ylabel("zero-shot accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title or "Our models vs the paper's Table 4")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False, markerscale=0.4)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120, bbox_inches="tight")
    return fig


# ---------------------------------------------------------------- per question: two metrics, length bias, paired tests
def question_records(samples: list[dict], token_count=None) -> list[dict]:
    """One record per scored question from lm-eval's logged samples (simple_evaluate(log_samples=True)).

    Each: doc_id, subject, gold (index), lls (summed log-likelihood of each choice's continuation), pick (what
    `acc` takes: the highest sum), pick_norm (what `acc_norm` takes: the highest sum divided by the choice's
    length in characters, as lm-eval's ConfigurableTask.process_results does), acc and acc_norm (0/1, lm-eval's
    own), and with `token_count` (text -> number of tokens) the tokens of each choice.
    """
    import numpy as np

    out = []
    for s in sorted(samples, key=lambda s: s["doc_id"]):
        # the scored continuations; lm-eval prefixes target_delimiter (" ") unless the chat template is applied
        choices = [(a[1] if isinstance(a, (list, tuple)) else a["arg_1"]).strip() for a in s["arguments"]]
        lls = np.asarray([float(r[0]) for r in s["filtered_resps"]])
        rec = {
            "doc_id": int(s["doc_id"]), "subject": s["doc"].get("subject", ""), "gold": int(s["target"]),
            "lls": lls.tolist(), "pick": int(lls.argmax()),
            "pick_norm": int((lls / np.asarray([len(c) for c in choices], dtype=float)).argmax()),
            "acc": int(s["acc"]), "acc_norm": int(s.get("acc_norm", s["acc"])),
        }
        if token_count is not None:
            rec["tokens"] = [int(token_count(c)) for c in choices]
        out.append(rec)
    return out


def metrics_table(scores: dict[str, dict[str, dict]]) -> pd.DataFrame:
    """Both of lm-eval's multiple-choice metrics side by side, in %: `acc` (highest summed log-likelihood) and
    `acc_norm` (highest log-likelihood per character of the answer). One row per task, columns (model, metric)."""
    tasks = list(dict.fromkeys(t for s in scores.values() for t in s))
    rows = {}
    for t in tasks:
        rows[column(t)] = {(m, k): 100 * scores[m][t][k] for m in scores for k in ("acc", "acc_norm")
                                       if t in scores[m]}
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.columns = pd.MultiIndex.from_tuples(df.columns, names=["model", "metric"])
    return df.round(1)


def length_bias(questions: dict[str, dict[str, list[dict]]]) -> pd.DataFrame:
    """The length lesson, per task and model: how often the pick is the option with the fewest tokens.

    `questions` is {model: {task: question_records(...) with tokens}}. Only questions whose options differ in
    length count (`n`; a task whose options are all equally long, like the taught facts, is left out). Columns per
    model: the share (%) of `acc` picks and of `acc_norm` picks that are a shortest option (ties count);
    `right answer shortest %` is how often the right answer is itself a shortest option, i.e. the accuracy of a
    reader who always picks the shortest. A summed log-likelihood adds one negative term per token, so a model
    that knows nothing (every token about -ln(vocabulary)) picks the shortest option every time.
    """
    rows = {}
    for model, by_task in questions.items():
        for task, recs in by_task.items():
            recs = [r for r in recs if "tokens" in r and len(set(r["tokens"])) > 1]
            if not recs:
                continue
            shortest = [{i for i, n in enumerate(r["tokens"]) if n == min(r["tokens"])} for r in recs]

            def share(key: str) -> float:
                return round(100 * sum(r[key] in s for r, s in zip(recs, shortest)) / len(recs), 1)

            row = rows.setdefault(column(task), {"n": len(recs)})
            row["right answer shortest %"] = share("gold")
            row[f"{model} acc pick shortest %"] = share("pick")
            row[f"{model} acc_norm pick shortest %"] = share("pick_norm")
    return pd.DataFrame.from_dict(rows, orient="index")


def per_subject(questions: dict[str, dict[str, list[dict]]], task: str, metric: str = "acc") -> pd.DataFrame:
    """Accuracy (%) per subject of one task (MMLU's six medical subjects, as lm-eval's mmlu_* tasks report them
    one per subject) with the number of questions, plus the pooled row (all questions, as Table 4 reports MMLU)."""
    rows: dict[str, dict] = {}
    for model, by_task in questions.items():
        recs = by_task.get(task) or []
        for subj in sorted({r["subject"] for r in recs}) + ["pooled"]:
            got = [r[metric] for r in recs if subj == "pooled" or r["subject"] == subj]
            row = rows.setdefault(subj, {})
            row["n"] = len(got)
            row[model] = round(100 * sum(got) / len(got), 1)
    return pd.DataFrame.from_dict(rows, orient="index")


def mcnemar(correct_a: list[int], correct_b: list[int], exact_below: int = 25) -> dict:
    """McNemar's paired test of two models on the same questions (scipy).

    Only the discordant questions count: b = a right and b wrong, c = a wrong and b right. Under the null
    (equal accuracy) each discordant question is a fair coin, so with few of them (b + c < exact_below) the
    p-value is the exact two-sided binomial test of b successes in b + c (scipy.stats.binomtest); otherwise the
    chi-square statistic (|b - c| - 1)^2 / (b + c) with continuity correction, 1 degree of freedom.
    """
    from scipy.stats import binomtest, chi2

    if len(correct_a) != len(correct_b):
        raise ValueError(f"McNemar needs the same questions for both models; got {len(correct_a)} and {len(correct_b)} answers")
    if not correct_a:
        raise ValueError("McNemar needs at least one question")
    b = sum(1 for x, y in zip(correct_a, correct_b) if x and not y)
    c = sum(1 for x, y in zip(correct_a, correct_b) if y and not x)
    n = b + c
    if n == 0:
        p, method = 1.0, "no discordant questions"
    elif n < exact_below:
        p, method = float(binomtest(b, n, 0.5).pvalue), "exact binomial"
    else:
        p, method = float(chi2.sf((abs(b - c) - 1) ** 2 / n, 1)), "chi-square, continuity corrected"
    return {"questions": len(correct_a), "only first right": b, "only second right": c, "p": p, "method": method}


def paired_tests(questions: dict[str, dict[str, list[dict]]], first: str, second: str, metric: str = "acc") -> pd.DataFrame:
    """McNemar per task between two scored models, over the questions both answered (matched by doc_id)."""
    rows = {}
    for task, recs_a in questions[first].items():
        recs_b = {r["doc_id"]: r for r in questions[second].get(task, [])}
        common = [r for r in recs_a if r["doc_id"] in recs_b]
        if not common:
            continue
        a, b = [r[metric] for r in common], [recs_b[r["doc_id"]][metric] for r in common]
        row = {f"{first} {metric} %": round(100 * sum(a) / len(a), 1), f"{second} {metric} %": round(100 * sum(b) / len(b), 1)}
        row.update(mcnemar(a, b))
        rows[column(task)] = row
    df = pd.DataFrame.from_dict(rows, orient="index")
    return df.rename(columns={"only first right": f"only {first} right", "only second right": f"only {second} right"})


def stage_verdict(table: pd.DataFrame, paired: pd.DataFrame, first: str, second: str,
                  confidence: float = 0.95) -> pd.DataFrame:
    """Per task: `second`'s score against `first`'s Wilson interval, and the paired McNemar p-value.

    `table` is results_table's (with `<model> low/high`, at `confidence`, which names the interval's column),
    `paired` is paired_tests(..., first, second). A score
    outside the other model's interval and p < 0.05 both say the same questions tell the two apart.
    """
    t = table.drop(index="Avg.", errors="ignore")
    rows = {}
    for task, r in t.iterrows():
        if f"{first} low" not in r or pd.isna(r.get(f"{first} low")):
            continue
        p = paired.loc[task, "p"] if task in paired.index else float("nan")
        above, below = r[second] > r[f"{first} high"], r[second] < r[f"{first} low"]
        rows[task] = {"n": r.get("n"), first: r[first], f"{first} {confidence:.0%} interval": f"[{r[f'{first} low']:.1f}, {r[f'{first} high']:.1f}]",
                      second: r[second], f"{second} vs that interval": "above" if above else "below" if below else "inside",
                      "McNemar p": round(float(p), 4)}
    return pd.DataFrame.from_dict(rows, orient="index")
