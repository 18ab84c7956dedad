"""Synthetic battles from known ratings: for tests, the benchmark and teaching (what a CI looks like)."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from .elo import EloScale


def simulate_battles(ratings: dict[str, float], n_questions: int, seed: int = 0, scale: EloScale = EloScale(),
                     first_position_bonus: float = 0.0, question_sd: float = 0.0) -> pd.DataFrame:
    """Every pair of models on every question, in both orders (like the judge pipeline).

    P(shown-first wins) follows the ratings, plus `first_position_bonus` Elo for the first slot;
    `question_sd` adds a per-question, per-model random effect (correlated battles within a question).
    """
    rng = np.random.default_rng(seed)
    models = list(ratings)
    r = np.array([ratings[m] for m in models], float)
    pairs = [(i, j) for i, j in itertools.permutations(range(len(models)), 2)]  # both orders
    ia = np.tile(np.array([p[0] for p in pairs]), n_questions)
    ib = np.tile(np.array([p[1] for p in pairs]), n_questions)
    q = np.repeat(np.arange(n_questions), len(pairs))
    eff = rng.normal(0, question_sd, size=(n_questions, len(models))) if question_sd else np.zeros((n_questions, len(models)))
    d = (r[ia] + eff[q, ia]) - (r[ib] + eff[q, ib]) + first_position_bonus
    p = 1.0 / (1.0 + scale.base ** (-d / scale.scale))
    a_wins = rng.random(len(p)) < p
    names = np.array(models, dtype=object)
    return pd.DataFrame({
        "question_id": [f"q{i:05d}" for i in q],
        "model_a": names[ia],
        "model_b": names[ib],
        "winner": np.where(a_wins, "model_a", "model_b"),
    })


def _centred(ratings: dict[str, float], scale: EloScale) -> pd.Series:
    """True ratings on the fitted scale: unanchored BT ratings have mean `initial`."""
    s = pd.Series(ratings, dtype=float)
    return s - s.mean() + scale.initial


POPULATION_QUESTIONS = 20_000


def population_ratings(ratings: dict[str, float], question_sd: float, seed: int = 0, scale: EloScale = EloScale(),
                       n_questions: int = POPULATION_QUESTIONS) -> pd.Series:
    """The ratings Bradley-Terry converges to on endlessly many questions, centred like a fit.

    Without question effects these are the true ratings. With them (question_sd > 0) the fitted ratings lie closer
    together than the true ones: a question that happens to suit the weaker model is a loss for the stronger one
    however far ahead it is. That attenuated rating is what any run estimates, so it is what an interval must hold;
    it is found here from one very large simulated run.
    """
    if not question_sd:
        return _centred(ratings, scale)
    from .elo import bt_elo

    big = simulate_battles(ratings, n_questions, seed=seed + 99_991, scale=scale, question_sd=question_sd)
    return bt_elo(big, scale).reindex(list(ratings))


def recovery_study(ratings: dict[str, float], n_questions: int, reps: int = 100, rounds: int = 200, seed: int = 0,
                   question_sd: float = 0.0, level: float = 0.95, scale: EloScale = EloScale()) -> dict:
    """Can Bradley-Terry + bootstrap recover known strengths, with honest intervals?

    Simulates `reps` independent judging runs (every pair, both orders, `n_questions` questions) from `ratings`,
    fits BT Elo and `level` bootstrap intervals by battle and by question on each, and reports:
    - "example": the first run, per model: true (what the fit converges to, see population_ratings), elo,
      lower/upper per kind;
    - "coverage": per model and kind, the share of runs whose interval holds the true value, and mean width;
    - "n_battles": battles per run.
    With question_sd > 0 a question moves every model differently (correlated battles): resampling battles then
    gives intervals that are too narrow (coverage below `level`), resampling questions stays honest.
    """
    from .elo import bootstrap_bt, bt_elo

    if reps < 1 or rounds < 1:
        raise ValueError("recovery_study needs reps >= 1 and rounds >= 1")
    truth = population_ratings(ratings, question_sd, seed, scale)
    lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2
    rows, example, n_battles = [], None, 0
    for r in range(reps):
        b = simulate_battles(ratings, n_questions, seed=seed + r, scale=scale, question_sd=question_sd)
        n_battles = len(b)
        point = bt_elo(b, scale)
        ex = pd.DataFrame({"true": truth, "elo": point.reindex(truth.index)})
        for kind in ("battle", "question"):
            bs = bootstrap_bt(b, rounds, kind, scale, seed=seed + 10_000 + r)
            lo, hi = bs.quantile(lo_q).reindex(truth.index), bs.quantile(hi_q).reindex(truth.index)
            ex[f"lower_{kind}"], ex[f"upper_{kind}"] = lo, hi
            for m in truth.index:
                rows.append({"model": m, "kind": kind, "covered": bool(lo[m] <= truth[m] <= hi[m]),
                             "width": float(hi[m] - lo[m])})
        if example is None:
            example = ex
    cov = (pd.DataFrame(rows).groupby(["model", "kind"])
           .agg(coverage=("covered", "mean"), mean_width=("width", "mean")).reset_index())
    return {"example": example, "coverage": cov, "n_battles": n_battles, "reps": reps, "level": level,
            "n_questions": n_questions, "question_sd": question_sd}


def example_misses(study: dict) -> pd.DataFrame:
    """The example run's intervals that miss the truth: model, kind, true, elo, lower, upper (empty if none)."""
    ex = study["example"]
    rows = []
    for kind in ("battle", "question"):
        lo, hi = ex[f"lower_{kind}"], ex[f"upper_{kind}"]
        for m in ex.index[(ex["true"] < lo) | (ex["true"] > hi)]:
            rows.append({"model": m, "kind": kind, "true": ex.loc[m, "true"], "elo": ex.loc[m, "elo"],
                         "lower": lo[m], "upper": hi[m]})
    return pd.DataFrame(rows, columns=["model", "kind", "true", "elo", "lower", "upper"])


def rank_inversions(study: dict) -> list[tuple[str, str]]:
    """Pairs (a, b) where a is truly stronger but the example run's point estimate puts b above a."""
    ex = study["example"]
    order = list(ex["true"].sort_values(ascending=False).index)
    return [(a, b) for i, a in enumerate(order) for b in order[i + 1:] if ex.loc[b, "elo"] > ex.loc[a, "elo"]]


def coverage_table(*studies: dict) -> pd.DataFrame:
    """Coverage and mean width per kind of bootstrap, averaged over models, one row per study (question effect)."""
    rows = []
    for st in studies:
        g = st["coverage"].groupby("kind")
        for kind, part in g:
            rows.append({"question effect (Elo sd)": st["question_sd"], "bootstrap": f"by {kind}",
                         "coverage": part["coverage"].mean(), "mean width": part["mean_width"].mean()})
    return pd.DataFrame(rows).pivot(index="question effect (Elo sd)", columns="bootstrap",
                                    values=["coverage", "mean width"])


def position_bias_study(ratings: dict[str, float], n_questions: int, first_position_bonus: float = 100.0,
                        seed: int = 0, scale: EloScale = EloScale()) -> dict:
    """What a judge that favours the first-shown answer does to the ratings, and why both orders are judged.

    Simulates battles where the first slot is worth `first_position_bonus` Elo, then rates them twice: from both
    orders of every pair (as 06 judges) and from one order only (the model listed first always shown first).
    Returns the first-position win share and a table: true rating, BT Elo from both orders, from one order.
    """
    from .elo import bt_elo

    b = simulate_battles(ratings, n_questions, seed=seed, scale=scale, first_position_bonus=first_position_bonus)
    rank = {m: i for i, m in enumerate(ratings)}
    one_order = b[b["model_a"].map(rank) < b["model_b"].map(rank)]
    table = pd.DataFrame({"true": _centred(ratings, scale),
                          "both orders": bt_elo(b, scale),
                          "one order (listed first shown first)": bt_elo(one_order, scale)})
    return {"first_position_win_share": float((b["winner"] == "model_a").mean()), "table": table,
            "battles": len(b), "first_position_bonus": first_position_bonus}
