"""Our scores next to the paper's Table 4: reference rows, deltas, and a bar chart."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

# Table 4 columns, in the paper's order, and the task that reproduces each.
TABLE4_COLUMNS = ("MMLU-Pro", "MMLU", "MedMCQA", "MedQA", "UsMLE", "PubmedQA", "ToxiGen")
TASK_COLUMN = {
    "med42_mmlu_pro_health": "MMLU-Pro",
    "med42_mmlu_medical": "MMLU",
    "med42_medmcqa": "MedMCQA",
    "med42_medqa_4options": "MedQA",
    "med42_usmle_sa": "UsMLE",
    "med42_pubmedqa": "PubmedQA",
    "med42_toxigen": "ToxiGen",
}

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
    return PAPER_TABLE4[model][(*TABLE4_COLUMNS, "Avg.").index(column)]


def reference_rows(display_name: str) -> tuple[str, str, bool]:
    """(paper base row, paper Med42 row, exact) for params.model.display_name.

    'Llama3-70B-Instruct' -> ('Llama3-70B-Instruct', 'Med42-Llama3-70B', True). A model not in Table 4
    (size tiny) is shown against the 8B rows, with exact=False.
    """
    if display_name in PAPER_TABLE4 and not display_name.startswith("Med42"):
        return display_name, "Med42-" + display_name.removesuffix("-Instruct"), True
    return "Llama3-8B-Instruct", "Med42-Llama3-8B", False


def results_table(scores: dict[str, dict[str, dict]], display_name: str, chance: dict[str, float] | None = None,
                  metric: str = "acc") -> pd.DataFrame:
    """One row per task (Table 4 column names), accuracy in %.

    Columns: chance, each evaluated stage, the paper's base and Med42 rows, and three deltas:
    first stage - paper base, last stage - paper Med42, and our gain (last - first) - the paper's gain.
    `scores` is {stage: {task: {"acc": fraction, ...}}} in evaluation order (base first, last DPO round last).
    """
    if not scores:
        raise ValueError("no scores to tabulate: evaluate at least one model")
    base_row, med42_row, _ = reference_rows(display_name)
    stages = list(scores)
    tasks = [t for t in TASK_COLUMN if any(t in s for s in scores.values())]
    rows = []
    for t in tasks:
        col = TASK_COLUMN[t]
        r = {"benchmark": col}
        if chance:
            r["chance"] = 100 * chance[t]
        for s in stages:
            r[s] = 100 * scores[s][t][metric] if t in scores[s] else float("nan")
        r[f"paper {base_row}"] = paper_score(base_row, col)
        r[f"paper {med42_row}"] = paper_score(med42_row, col)
        first, last = r[stages[0]], r[stages[-1]]
        r[f"{stages[0]} - paper base"] = first - r[f"paper {base_row}"]
        r[f"{stages[-1]} - paper Med42"] = last - r[f"paper {med42_row}"]
        r["our gain - paper gain"] = (last - first) - (r[f"paper {med42_row}"] - r[f"paper {base_row}"])
        rows.append(r)
    df = pd.DataFrame(rows).set_index("benchmark")
    df.loc["Avg."] = df.mean(numeric_only=True)
    return df.round(1)


def bar_chart(table: pd.DataFrame, path: Path | None = None, title: str = ""):
    """Grouped bars per benchmark: our stages and the paper's two rows; chance as black ticks."""
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np

    t = table.drop(index="Avg.", errors="ignore")
    series = [c for c in t.columns if c != "chance" and " - " not in c]
    x = np.arange(len(t))
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(7, 1.3 * len(t)), 4))
    for i, c in enumerate(series):
        ax.bar(x + i * width - 0.4 + width / 2, t[c], width, label=c, hatch="//" if c.startswith("paper") else None)
    if "chance" in t:
        ax.scatter(x, t["chance"], marker="_", s=900, color="black", zorder=3, label="chance")
    ax.set_xticks(x, t.index, rotation=20)
    ax.set_ylabel("zero-shot accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title or "Our models vs the paper's Table 4")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120, bbox_inches="tight")
    return fig
