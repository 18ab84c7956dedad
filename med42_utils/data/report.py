"""Plots and display tables for 01_data_curation: the mixture against Table 5, length distributions."""
from __future__ import annotations

from .registry import REGISTRY
from .text import conversation_text


def plot_mixture(mix, ax=None):
    """Horizontal bars: Table 5's printed ratio vs the achieved share of each source (%)."""
    import matplotlib.pyplot as plt
    import numpy as np

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 7))
    y = np.arange(len(mix))
    ax.barh(y - 0.2, mix["paper_ratio"], height=0.4, label="Table 5 (printed, % of 1,296,471)")
    ax.barh(y + 0.2, mix["achieved_ratio"], height=0.4, label="this run (% of curated rows)")
    ax.set_yticks(y, [REGISTRY[k].name for k in mix.index])
    ax.invert_yaxis()
    ax.set_xlabel("share of the mixture (%)")
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncol=2, frameon=False)  # above the bars, never on them
    return ax


def length_frame(ds):
    """Words per example (user+assistant) and number of turns, per source."""
    import pandas as pd

    df = ds.select_columns(["source", "messages"]).to_pandas()
    return pd.DataFrame({
        "source": df["source"],
        "words": [len(conversation_text(list(m)).split()) for m in df["messages"]],
        "turns": [sum(1 for t in m if t["role"] != "system") for m in df["messages"]],
    })


def length_summary(lengths) -> str:
    """One line of the length figures the notebook states: mean and longest overall, shortest and longest source."""
    by = lengths.groupby("source")["words"].mean()
    return (f"words per sample: mean {lengths['words'].mean():.0f}, longest {lengths['words'].max():,}; "
            f"by source from {by.min():.0f} ({by.idxmin()}) to {by.max():.0f} ({by.idxmax()}) on average")


def plot_lengths(lengths, ax=None):
    """Box plot of words per example for each source."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 6))
    keys = [k for k in REGISTRY if k in set(lengths["source"])]
    ax.boxplot([lengths.loc[lengths.source == k, "words"] for k in keys], orientation="horizontal", tick_labels=keys)
    ax.set_xscale("log")
    from matplotlib.ticker import FuncFormatter

    plain = FuncFormatter(lambda v, _: f"{v:g}")  # 20, 30, 50 rather than 2x10^1
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    ax.tick_params(axis="x", which="minor", labelsize=8)
    ax.set_xlabel("words per example (user + assistant)")
    ax.invert_yaxis()
    return ax


def curation_story(manifest: dict, funnel, drops):
    """01: how many rows each step kept and dropped, and every decontaminated row by source and benchmark."""
    from ..narrate import count, say

    funnel = funnel.drop(index="TOTAL", errors="ignore")
    raw, kept = int(funnel["raw"].sum()), int(funnel["sampled"].sum())
    dec = [ex["question"].split(":")[0] for ex in manifest["examples"]["decontaminated"]]
    ids = [ex["id"].rsplit("-", 1)[0] for ex in manifest["examples"]["decontaminated"]]
    removed = int(drops.loc[drops["step"] == "decontaminated", "count"].sum())
    return say(f"{raw:,} raw rows from {len(funnel)} sources; {int(drops['count'].sum()):,} dropped and counted "
               f"(by step and reason above), {kept:,} in the sampled mixture.",
               f"Decontamination removed {count(removed, 'row')}"
               + (": " + "; ".join(f"a {s} row containing a {b} question" for s, b in zip(ids, dec)) + "."
                  if dec else "."))


def curation_expectations(out_dir, funnel, drops, manifest: dict):
    """01's checks: nothing vanishes (per source, raw minus what is left before sampling = the counted drops), and
    decontamination finds the benchmark questions planted in the bundled samples."""
    from ..expectations import expect, show_expectations

    funnel = funnel.drop(index="TOTAL", errors="ignore")
    counted = drops.groupby("source")["count"].sum().reindex(funnel.index, fill_value=0)
    lost = funnel["raw"] - funnel["decontaminated"]
    bad = [s for s in funnel.index if lost[s] != counted[s]]
    removed = int(drops.loc[drops["step"] == "decontaminated", "count"].sum())
    items = [expect("every row lost before sampling is counted, per source, with its step and reason", not bad,
                    f"{int(lost.sum())} rows lost, {int(counted.sum())} counted" + (f"; differ: {bad}" if bad else ""))]
    if manifest["size"] == "tiny":  # the bundled samples hold copies of benchmark questions on purpose
        items.append(expect("decontamination removes the bundled rows planted with a benchmark question",
                            removed >= 1, f"{removed} removed"))
    return show_expectations(out_dir, "01_data_curation", items)
