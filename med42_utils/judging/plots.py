"""Figures of 06_elo_judging: win-rate heatmaps and position-bias charts."""
from __future__ import annotations

import numpy as np
import pandas as pd


def plot_win_rates(empirical: pd.DataFrame, predicted: pd.DataFrame):
    """Side-by-side heatmaps of P(row beats column): observed, and implied by the ratings."""
    import matplotlib.pyplot as plt

    order = list(empirical.index)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), sharey=True, constrained_layout=True)
    for ax, mat, title in ((axes[0], empirical, "empirical win rate"), (axes[1], predicted, "predicted from BT Elo")):
        im = ax.imshow(mat.loc[order, order].to_numpy(dtype=float), vmin=0, vmax=1, cmap="RdBu")
        ax.set_xticks(range(len(order)), order, rotation=30, ha="right")
        ax.set_yticks(range(len(order)), order)
        for i in range(len(order)):
            for j in range(len(order)):
                v = mat.loc[order, order].iat[i, j]
                if not np.isnan(v):
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=9)
        ax.set_title(title)
        ax.set_xlabel("opponent")
    axes[0].set_ylabel("model")
    fig.colorbar(im, ax=axes, shrink=0.8, label="P(row beats column)")
    return fig


def plot_position_bias(pb: dict):
    """First-position win share per pair, and how often the winner survives swapping the order."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), constrained_layout=True)
    per = pb["per_pair"]
    axes[0].barh(per["pair"], per["first_position_win_share"], color="tab:orange")
    axes[0].axvline(0.5, color="k", ls="--", lw=1)
    axes[0].set_xlim(0, 1)
    axes[0].set_xlabel("share of judgments won by the first-shown response")
    axes[0].set_title("first-position win share per pair")
    n_sw = pb["swapped_pairs"]
    axes[1].bar(["same winner\nboth orders", "winner flips\nwith order"],
                [pb["swap_consistent"], n_sw - pb["swap_consistent"]], color=["tab:green", "tab:red"])
    axes[1].set_ylabel("question × pair")
    axes[1].set_title("swap consistency")
    return fig
