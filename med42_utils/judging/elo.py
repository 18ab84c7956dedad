"""Elo ratings from pairwise battles, as Chatbot Arena computes them.

A battle is one judgment: `model_a` (shown first), `model_b` (shown second), `winner` in
{"model_a", "model_b", "tie"}, plus the `question_id` it came from.

- `online_elo`: the classic sequential update (K, scale 400, base 10, initial 1000); order-dependent.
- `bt_elo`: Bradley-Terry maximum likelihood on the same scale (P(i beats j) = 1/(1+base^((r_j-r_i)/scale))),
  ties count half a win each way, ratings centred on `initial`, optionally shifted so an anchor model
  sits at a given value. Battles are first aggregated into a win-count matrix, so a fit is a few
  Newton steps on an n x n problem whatever the number of battles.
- `bootstrap_bt`: confidence intervals by resampling battles (Arena) or whole questions (a question's
  battles share one prompt and are correlated, so this interval is the honest one). All rounds are
  fitted at once as a batch of weighted count matrices, warm-started from the full-data fit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

WINNERS = ("model_a", "model_b", "tie")
RIDGE = 1e-9  # per battle, in natural-log units: keeps a perfectly separated set finite, moves others < 0.01 Elo


@dataclass(frozen=True)
class EloScale:
    scale: float = 400.0
    base: float = 10.0
    initial: float = 1000.0

    @property
    def alpha(self) -> float:
        """Natural-log odds per Elo point."""
        return math.log(self.base) / self.scale


def check_battles(battles: pd.DataFrame) -> pd.DataFrame:
    """Battles with the needed columns and valid winners, or an error naming the problem."""
    need = {"model_a", "model_b", "winner"}
    missing = need - set(battles.columns)
    if missing:
        raise ValueError(f"battles lack column(s) {sorted(missing)}; need model_a, model_b, winner (+ question_id)")
    bad = ~battles["winner"].isin(WINNERS).to_numpy()
    if bad.any():
        raise ValueError(f"battles: {int(bad.sum())} row(s) have winner outside {WINNERS}, e.g. "
                         f"{battles.loc[bad, 'winner'].iloc[0]!r}; drop or map them first")
    if len(battles) == 0:
        raise ValueError("no battles to rate: every judgment was unparseable or no questions were judged")
    if (battles["model_a"].to_numpy() == battles["model_b"].to_numpy()).any():
        raise ValueError("battles: a model cannot battle itself (model_a == model_b)")
    return battles


def model_list(battles: pd.DataFrame) -> list[str]:
    return sorted(set(pd.unique(battles["model_a"])) | set(pd.unique(battles["model_b"])))


def category_codes(col: pd.Series, names: list[str] | tuple) -> np.ndarray:
    unknown = ~col.isin(list(names))
    if unknown.any():
        raise ValueError(f"battles: value {col[unknown].iloc[0]!r} in column '{col.name}' is not one of {list(names)}")
    return pd.Categorical(col, categories=list(names)).codes.astype(np.int64)


def _encode(battles: pd.DataFrame, models: list[str]):
    """Integer codes: model_a, model_b indices into models; winner 0 (a), 1 (b), 2 (tie)."""
    return (category_codes(battles["model_a"], models), category_codes(battles["model_b"], models),
            category_codes(battles["winner"], WINNERS))


def _cell_matrix(n: int) -> np.ndarray:
    """Map (a, b, outcome) cells to contributions to the flattened win matrix W[i, j] (i beat j)."""
    m = np.zeros((n * n * 3, n * n))
    for a in range(n):
        for b in range(n):
            base = (a * n + b) * 3
            m[base + 0, a * n + b] = 1.0  # a wins
            m[base + 1, b * n + a] = 1.0  # b wins
            m[base + 2, a * n + b] = 0.5  # tie: half a win each way
            m[base + 2, b * n + a] = 0.5
    return m


def _cells(a, b, w, n, group=None, n_groups=None) -> np.ndarray:
    """Counts per (a, b, outcome) cell; per group (question) when group is given."""
    cell = (a * n + b) * 3 + w
    if group is None:
        return np.bincount(cell, minlength=n * n * 3).astype(float)
    flat = group * (n * n * 3) + cell
    return np.bincount(flat, minlength=n_groups * n * n * 3).reshape(n_groups, n * n * 3).astype(float)


def win_matrix(battles: pd.DataFrame, models: list[str] | None = None) -> pd.DataFrame:
    """W[i, j] = wins of row model over column model (ties half each), both positions pooled."""
    models = models or model_list(battles)
    n = len(models)
    W = (_cells(*_encode(battles, models), n) @ _cell_matrix(n)).reshape(n, n)
    return pd.DataFrame(W, index=models, columns=models)


def fit_bt(W: np.ndarray, scale: EloScale = EloScale(), init: np.ndarray | None = None,
           tol: float = 1e-7, max_iter: int = 100) -> np.ndarray:
    """Bradley-Terry MLE of centred ratings (Elo points, mean 0) from win matrices W (..., n, n).

    Damped Newton on the concave log-likelihood, batched over leading axes; `init` warm-starts.
    """
    W = np.asarray(W, float)
    batch, n = W.shape[:-2], W.shape[-1]
    a = scale.alpha
    x = np.zeros(batch + (n,)) if init is None else np.broadcast_to(np.asarray(init, float), batch + (n,)).copy()
    x -= x.mean(-1, keepdims=True)
    tot = W + np.swapaxes(W, -1, -2)
    lam = RIDGE * W.sum((-1, -2))[..., None] + 1e-12  # ridge in log-odds units
    eye, ones = np.eye(n), np.full((n, n), 1.0 / n)
    for _ in range(max_iter):
        d = a * (x[..., :, None] - x[..., None, :])
        p = 1.0 / (1.0 + np.exp(-d))  # P(i beats j)
        G = W * (1.0 - p)
        grad = (G.sum(-1) - G.sum(-2)) - lam * a * x  # d LL / d(alpha x), ridge on alpha x
        N = tot * p * (1.0 - p)
        info = (_diag(N.sum(-1)) - N
                + lam[..., None] * eye + ones)
        step = np.linalg.solve(info, grad[..., None])[..., 0] / a  # back to Elo points
        step = np.clip(step, -400.0, 400.0)
        x = x + step
        x -= x.mean(-1, keepdims=True)
        if np.max(np.abs(step)) < tol:
            break
    return x


def _diag(v: np.ndarray) -> np.ndarray:
    out = np.zeros(v.shape + (v.shape[-1],))
    idx = np.arange(v.shape[-1])
    out[..., idx, idx] = v
    return out


def _place(x: np.ndarray, models: list[str], scale: EloScale, anchor_model: str | None, anchor_value: float | None):
    """Centred ratings -> mean `initial`, or shifted so the anchor model sits at anchor_value."""
    if (anchor_model is None) != (anchor_value is None):
        raise ValueError("give both elo.anchor_model and elo.anchor_value, or neither")
    if anchor_model is None:
        return x + scale.initial
    if anchor_model not in models:
        raise ValueError(f"elo.anchor_model '{anchor_model}' is not among the rated models {models}")
    i = models.index(anchor_model)
    return x - x[..., i : i + 1] + anchor_value


def bt_elo(battles: pd.DataFrame, scale: EloScale = EloScale(), anchor_model: str | None = None,
           anchor_value: float | None = None, models: list[str] | None = None) -> pd.Series:
    """Bradley-Terry Elo of every model (Chatbot Arena's MLE rating)."""
    check_battles(battles)
    models = models or model_list(battles)
    x = fit_bt(win_matrix(battles, models).to_numpy(), scale)
    return pd.Series(_place(x, models, scale, anchor_model, anchor_value), index=models, name="elo")


def bootstrap_bt(battles: pd.DataFrame, rounds: int, by: str = "battle", scale: EloScale = EloScale(),
                 anchor_model: str | None = None, anchor_value: float | None = None, seed: int = 0,
                 models: list[str] | None = None) -> pd.DataFrame:
    """Bootstrap BT ratings: `rounds` x models. by='battle' resamples battles with replacement (Arena);
    by='question' resamples whole questions (needs a question_id column)."""
    check_battles(battles)
    if rounds < 1:
        raise ValueError("bootstrap rounds must be >= 1 (params elo.bootstrap_rounds)")
    models = models or model_list(battles)
    n = len(models)
    a, b, w = _encode(battles, models)
    M = _cell_matrix(n)
    rng = np.random.default_rng(seed)
    if by == "battle":
        c = _cells(a, b, w, n)
        counts = rng.multinomial(len(battles), c / c.sum(), size=rounds).astype(float)  # = resampling battles
        Ws = counts @ M
    elif by == "question":
        if "question_id" not in battles.columns:
            raise ValueError("bootstrap by='question' needs a question_id column in battles")
        q_codes, q_names = pd.factorize(battles["question_id"])
        nq = len(q_names)
        per_q = _cells(a, b, w, n, q_codes, nq) @ M  # nq x n*n
        draws = rng.integers(0, nq, size=(rounds, nq))
        counts = np.bincount((draws + np.arange(rounds)[:, None] * nq).ravel(), minlength=rounds * nq)
        Ws = counts.reshape(rounds, nq).astype(float) @ per_q
    else:
        raise ValueError(f"bootstrap by={by!r}; use 'battle' or 'question'")
    full = fit_bt((_cells(a, b, w, n) @ M).reshape(n, n), scale)
    x = fit_bt(Ws.reshape(rounds, n, n), scale, init=full)
    return pd.DataFrame(_place(x, models, scale, anchor_model, anchor_value), columns=models)


def leaderboard(point: pd.Series, boot: dict[str, pd.DataFrame] | pd.DataFrame, battles: pd.DataFrame | None = None,
                level: float = 0.95) -> pd.DataFrame:
    """Rating, percentile CIs per bootstrap kind, and rank with ties (1 + models whose lower bound beats our upper)."""
    if isinstance(boot, pd.DataFrame):
        boot = {"battle": boot}
    lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2
    df = pd.DataFrame({"elo": point})
    for kind, bs in boot.items():
        df[f"lower_{kind}"] = bs.quantile(lo_q)
        df[f"upper_{kind}"] = bs.quantile(hi_q)
    rank_kind = "question" if "question" in boot else next(iter(boot))
    lo, hi = df[f"lower_{rank_kind}"], df[f"upper_{rank_kind}"]
    df["rank"] = [1 + int((lo > hi[m]).sum()) for m in df.index]
    if battles is not None:
        counts = pd.concat([battles["model_a"], battles["model_b"]]).value_counts()
        df["battles"] = counts.reindex(df.index).fillna(0).astype(int)
    return df.sort_values("elo", ascending=False)


def interval_contrast(board: pd.DataFrame) -> pd.DataFrame:
    """Per model, the two bootstrap intervals of a leaderboard side by side: bounds, widths, and how many times
    wider the question interval is than the battle one."""
    out = pd.DataFrame({"elo": board["elo"]})
    for kind in ("battle", "question"):
        out[f"by {kind}"] = [f"[{lo:.1f}, {hi:.1f}]" for lo, hi in zip(board[f"lower_{kind}"], board[f"upper_{kind}"])]
        out[f"width by {kind}"] = board[f"upper_{kind}"] - board[f"lower_{kind}"]
    out["question / battle width"] = out["width by question"] / out["width by battle"]
    return out


def rank_with_ties(lower: pd.Series, upper: pd.Series) -> pd.Series:
    """1 + number of models whose lower bound is above this model's upper bound."""
    return pd.Series([1 + int((lower > upper[m]).sum()) for m in upper.index], index=upper.index, name="rank")


def online_elo(battles: pd.DataFrame, k: float = 4.0, scale: EloScale = EloScale()) -> pd.Series:
    """Sequential Elo in battle order: r_a += K (s_a - E_a), r_b += K (s_b - E_b)."""
    check_battles(battles)
    models = model_list(battles)
    a, b, w = _encode(battles, models)
    r = [scale.initial] * len(models)
    s_of = (1.0, 0.0, 0.5)
    base, sc = scale.base, scale.scale
    for i, j, o in zip(a.tolist(), b.tolist(), w.tolist()):
        ea = 1.0 / (1.0 + base ** ((r[j] - r[i]) / sc))
        sa = s_of[o]
        r[i] += k * (sa - ea)
        r[j] += k * ((1.0 - sa) - (1.0 - ea))
    return pd.Series(r, index=models, name="online_elo")


def predicted_win_rate(ratings: pd.Series, scale: EloScale = EloScale()) -> pd.DataFrame:
    """P(row beats column) implied by ratings; the diagonal is NaN."""
    r = ratings.to_numpy(float)
    p = 1.0 / (1.0 + scale.base ** ((r[None, :] - r[:, None]) / scale.scale))
    np.fill_diagonal(p, np.nan)
    return pd.DataFrame(p, index=ratings.index, columns=ratings.index)


def empirical_win_rate(battles: pd.DataFrame, models: list[str] | None = None) -> pd.DataFrame:
    """Share of battles the row model won against the column model (ties half), both positions pooled."""
    W = win_matrix(battles, models)
    tot = W + W.T
    with np.errstate(invalid="ignore", divide="ignore"):
        out = W / tot.where(tot > 0)
    for m in out.index:
        out.loc[m, m] = np.nan
    return out


def battle_counts(battles: pd.DataFrame, models: list[str] | None = None) -> pd.DataFrame:
    """Battles between each pair of models (both positions), symmetric."""
    W = win_matrix(battles, models)
    return (W + W.T).round().astype(int)


def elo_gap_for_win_rate(p: float, scale: EloScale = EloScale()) -> float:
    """The rating gap at which the stronger model wins a share p: scale * log_base(p / (1 - p))."""
    return scale.scale * math.log(p / (1 - p), scale.base)
