"""Length and style: what each model's answers look like, and Bradley-Terry ratings with style control.

LLM judges tend to prefer longer, more formatted answers, and DPO tends to lengthen them. Chatbot Arena
therefore reports, beside its plain ratings, a Bradley-Terry fit with *style control*: the logit of
"model_a wins" is the rating difference plus a linear term in style features of the two answers, so the
ratings are what remains once length and markdown are accounted for. We follow Arena's published
definition (facts, not code):

- four features per answer: tokens, markdown headers, list items, bold spans (code blocks removed first);
- per battle, each feature as the normalised difference (a - b) / (a + b + 1), then centred and divided by
  its standard deviation over the battles;
- ties are a half win (a soft label of 0.5), and the fit is a logistic regression without intercept.

A feature with no variation (every answer alike) carries no information and is left out of the fit.
"""
from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from .elo import EloScale, category_codes, check_battles, model_list

FEATURES = ("tokens", "headers", "list_items", "bold")
_CODE = re.compile(r"```.*?```", re.S)
_HEADER = re.compile(r"(?m)^#{1,6}\s+\S")
_LIST = re.compile(r"(?m)^\s*(?:[-*+]|\d+[.)])\s+\S")
_BOLD = re.compile(r"\*\*[^*\n]+\*\*|__[^_\n]+__")


def style_of(text: str, count_tokens: Callable[[str], int] | None = None) -> dict[str, int]:
    """The four style features of one answer. Tokens are counted by `count_tokens` (e.g. a tokenizer's),
    else as whitespace-separated words."""
    text = str(text or "")
    prose = _CODE.sub("", text)
    tokens = count_tokens(text) if count_tokens else len(text.split())
    return {"tokens": int(tokens), "headers": len(_HEADER.findall(prose)),
            "list_items": len(_LIST.findall(prose)), "bold": len(_BOLD.findall(prose))}


def answer_styles(answers: dict[str, dict[str, str]], count_tokens=None) -> pd.DataFrame:
    """One row per (model, question_id) with the style features of that answer."""
    rows = [{"model": m, "question_id": q, **style_of(a, count_tokens)}
            for m, per_q in answers.items() for q, a in per_q.items()]
    if not rows:
        raise ValueError("no answers to measure: answers is empty")
    return pd.DataFrame(rows)


def length_table(answers: dict[str, dict[str, str]], count_tokens=None) -> pd.DataFrame:
    """Per model: answers, mean and median length, and mean markdown counts (headers, list items, bold)."""
    st = answer_styles(answers, count_tokens)
    g = st.groupby("model")
    out = pd.DataFrame({"answers": g.size(), "mean_tokens": g["tokens"].mean(), "median_tokens": g["tokens"].median(),
                        "mean_headers": g["headers"].mean(), "mean_list_items": g["list_items"].mean(),
                        "mean_bold": g["bold"].mean()})
    return out.sort_values("mean_tokens", ascending=False)


def battle_features(battles: pd.DataFrame, answers: dict[str, dict[str, str]], count_tokens=None
                    ) -> pd.DataFrame:
    """Arena's style matrix: per battle and feature, (a - b) / (a + b + 1), centred and scaled to unit
    standard deviation; constant features are dropped. Every battle's two answers must be in `answers`."""
    check_battles(battles)
    if "question_id" not in battles.columns:
        raise ValueError("style control needs battles with a question_id column (to find each answer)")
    st = answer_styles(answers, count_tokens).set_index(["model", "question_id"])
    keys_a = pd.MultiIndex.from_arrays([battles["model_a"], battles["question_id"]])
    keys_b = pd.MultiIndex.from_arrays([battles["model_b"], battles["question_id"]])
    missing = [k for k in list(keys_a) + list(keys_b) if k not in st.index]
    if missing:
        raise ValueError(f"style control: {len(missing)} battle answer(s) not found, e.g. model {missing[0][0]!r} "
                         f"on question {missing[0][1]!r}; pass the answers every battle compared")
    a = st.loc[keys_a, list(FEATURES)].to_numpy(float)
    b = st.loc[keys_b, list(FEATURES)].to_numpy(float)
    diff = (a - b) / (a + b + 1.0)
    sd = diff.std(axis=0)
    keep = sd > 1e-12
    z = (diff[:, keep] - diff[:, keep].mean(axis=0)) / sd[keep]
    return pd.DataFrame(z, columns=[f for f, k in zip(FEATURES, keep) if k], index=battles.index)


def _outcomes(battles: pd.DataFrame) -> np.ndarray:
    return battles["winner"].map({"model_a": 1.0, "model_b": 0.0, "tie": 0.5}).to_numpy(float)


def _fit(a: np.ndarray, b: np.ndarray, X: np.ndarray, y: np.ndarray, w: np.ndarray, n: int,
         ridge: float = 1e-6, x0: np.ndarray | None = None) -> np.ndarray:
    """Weighted logistic fit of logit P(a wins) = s_a - s_b + X @ beta (natural-log units); returns [s, beta]."""
    k = X.shape[1]

    def loss_grad(p):
        s, beta = p[:n], p[n:]
        z = s[a] - s[b] + X @ beta
        prob = 1.0 / (1.0 + np.exp(-z))
        # soft-label cross entropy, stable: log(1+e^z) - y z
        loss = float(np.sum(w * (np.logaddexp(0.0, z) - y * z))) + 0.5 * ridge * float(p @ p) * w.sum()
        r = w * (prob - y)
        g = np.zeros_like(p)
        np.add.at(g, a, r)
        np.add.at(g, b, -r)
        g[n:] = X.T @ r
        return loss, g + ridge * p * w.sum()

    res = minimize(loss_grad, np.zeros(n + k) if x0 is None else x0, jac=True, method="L-BFGS-B",
                   options={"maxiter": 500, "gtol": 1e-10})
    return res.x


def _prepare(battles: pd.DataFrame, features: pd.DataFrame, models: list[str] | None):
    check_battles(battles)
    if len(features) != len(battles):
        raise ValueError(f"style features have {len(features)} rows for {len(battles)} battles; build them with "
                         "battle_features(battles, answers)")
    models = models or model_list(battles)
    a, b = category_codes(battles["model_a"], models), category_codes(battles["model_b"], models)
    return models, a, b, features.to_numpy(float), _outcomes(battles)


def _to_elo(s: np.ndarray, scale: EloScale) -> np.ndarray:
    s = s - s.mean()
    return scale.initial + s / scale.alpha


def style_bt(battles: pd.DataFrame, features: pd.DataFrame, scale: EloScale = EloScale(),
             models: list[str] | None = None) -> tuple[pd.Series, pd.Series]:
    """Style-controlled Bradley-Terry Elo (centred on scale.initial) and the style coefficients (Elo points
    per standard deviation of each feature; positive = the judge favours more of it)."""
    models, a, b, X, y = _prepare(battles, features, models)
    p = _fit(a, b, X, y, np.ones(len(y)), len(models))
    n = len(models)
    return (pd.Series(_to_elo(p[:n], scale), index=models, name="elo_style"),
            pd.Series(p[n:] / scale.alpha, index=features.columns, name="elo_per_sd"))


def bootstrap_style_bt(battles: pd.DataFrame, features: pd.DataFrame, rounds: int, by: str = "battle",
                       scale: EloScale = EloScale(), seed: int = 0, models: list[str] | None = None) -> pd.DataFrame:
    """Bootstrap of the style-controlled ratings (rounds x models), resampling battles or whole questions.
    Each round reweights the battles (multiplicity of each in the resample), so no data are copied."""
    if rounds < 1:
        raise ValueError("bootstrap rounds must be >= 1")
    models, a, b, X, y = _prepare(battles, features, models)
    n = len(models)
    rng = np.random.default_rng(seed)
    full = _fit(a, b, X, y, np.ones(len(y)), n)
    out = np.empty((rounds, n))
    if by == "question":
        if "question_id" not in battles.columns:
            raise ValueError("bootstrap by='question' needs a question_id column in battles")
        q, names = pd.factorize(battles["question_id"])
    elif by != "battle":
        raise ValueError(f"bootstrap by={by!r}; use 'battle' or 'question'")
    for r in range(rounds):
        if by == "battle":
            w = np.bincount(rng.integers(0, len(y), len(y)), minlength=len(y)).astype(float)
        else:
            wq = np.bincount(rng.integers(0, len(names), len(names)), minlength=len(names)).astype(float)
            w = wq[q]
        out[r] = _to_elo(_fit(a, b, X, y, w, n, x0=full)[:n], scale)
    return pd.DataFrame(out, columns=models)


def simulate_length_judge(n_models: int = 4, n_questions: int = 200, length_logit: float = 2.0, seed: int = 0,
                          true_gap: float = 0.0) -> tuple[pd.DataFrame, dict[str, dict[str, str]]]:
    """Battles from a judge that looks only at length (plus noise), between models that differ in how long
    they answer and (by `true_gap` Elo per model step) in quality. Returns (battles, answers); with
    true_gap=0 every model is equally good, so any rating gap is length bias."""
    rng = np.random.default_rng(seed)
    models = [f"m{i}" for i in range(n_models)]
    mean_words = {m: 40 + 60 * i for i, m in enumerate(models)}
    quality = {m: true_gap * i for i, m in enumerate(models)}
    answers = {m: {} for m in models}
    for m in models:
        for q in range(n_questions):
            n_words = max(1, int(rng.normal(mean_words[m], 0.35 * mean_words[m])))
            answers[m][f"q{q}"] = " ".join(["word"] * n_words)
    alpha = EloScale().alpha
    rows = []
    for q in range(n_questions):
        qid = f"q{q}"
        for i, ma in enumerate(models):
            for mb in models[i + 1:]:
                for first, second in ((ma, mb), (mb, ma)):
                    la, lb = len(answers[first][qid].split()), len(answers[second][qid].split())
                    z = length_logit * (la - lb) / (la + lb + 1) + alpha * (quality[first] - quality[second])
                    win = rng.random() < 1 / (1 + np.exp(-z))
                    rows.append({"question_id": qid, "model_a": first, "model_b": second,
                                 "winner": "model_a" if win else "model_b"})
    return pd.DataFrame(rows), answers
