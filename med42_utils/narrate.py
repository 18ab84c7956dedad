"""Sentences written from a run's own results, so a notebook's text is true of the run printed beneath it."""
from __future__ import annotations


class Said:
    """A paragraph for the notebook: Markdown in JupyterLab, the same words as plain text in any other viewer."""

    def __init__(self, text: str):
        self.text = text

    def _repr_markdown_(self) -> str:
        return self.text

    def __repr__(self) -> str:
        import textwrap

        return textwrap.fill(self.text.replace("**", "").replace("`", ""), width=120)


def say(*sentences: str) -> Said:
    """Join sentences into one paragraph (empty ones skipped) to display as a cell's last expression."""
    return Said(" ".join(s.strip() for s in sentences if s and s.strip()))


def count(n: int, noun: str, plural: str | None = None) -> str:
    """'1 round', '3 rounds'."""
    return f"{n:,} {noun if n == 1 else (plural or noun + 's')}"


def share(k: int, n: int) -> str:
    """'all 23', 'none of 11', '20 of 23': how many of a set, in words where that is exact."""
    if n and k == n:
        return f"all {n}" if n > 2 else ("both" if n == 2 else "the one")
    if k == 0:
        return f"none of {n}"
    return f"{k} of {n}"


# ---- training curves (03, 04) ---------------------------------------------------------------------------------

def spikes_said(curves, label: str = "the run", factor: float = 10.0) -> str:
    """Whether the gradient norm spiked (> factor x the median), where and how far; or how high it stayed."""
    from .training_logs import spikes

    if curves.empty or "grad_norm" not in curves:
        return f"{label.capitalize()} logged no gradient norm."
    sp, med = spikes(curves, factor), float(curves["grad_norm"].median())
    if sp.empty:
        top = curves["grad_norm"].idxmax()
        return (f"In {label} no step's gradient norm exceeded {factor:g} times the median ({med:.2f}): the highest, "
                f"{curves.loc[top, 'grad_norm']:.1f} at step {top}, stays below {factor * med:.1f}, so nothing is circled.")
    parts = [f"step {s} (gradient norm {r['grad_norm']:.1f}, {r['grad_norm'] / med:.0f}x the median {med:.2f}; "
             f"loss {r['loss']:.2f})" for s, r in sp.iterrows()]
    return (f"In {label} the gradient norm spiked {count(len(sp), 'time')}, circled in red: {'; '.join(parts)}. "
            "A spike is one step whose update was far larger than usual; watch whether the loss recovers in the "
            "next steps.")


def sft_story(manifest: dict, packing: dict, curves) -> Said:
    """03: how long SFT trained (steps, tokens, passes over the packed data), where the loss went, any spikes."""
    steps, per_step = manifest["global_step"], manifest["tokens_per_step"]
    seen, data = steps * per_step, packing["tokens"]
    first, last = float(curves["loss"].iloc[0]), float(curves["loss"].iloc[-1])
    return say(
        f"This run trained **{steps} steps** of {per_step:,} tokens: {seen:,} tokens over the {data:,} tokens of "
        f"the packed mixture, about **{seen / data:.1f} passes** over it (the paper made two passes over a far "
        f"larger mixture), in {manifest['wall_seconds']:.0f} s.",
        f"The loss went from {first:.2f} to {last:.2f} nats per assistant token.",
        spikes_said(curves, "this run"))


def sampling_said(sampling, card: str = "the model card's temperature 0.4, top-k 150, top-p 0.75") -> str:
    """The sampling settings this size uses, in words, beside the card's (a figure from the card)."""
    s = sampling
    cuts = [f"top-k {s.top_k}" if s.top_k else "no top-k cut", f"top-p {s.top_p:g}" if s.top_p < 1 else "no top-p cut"]
    return (f"This size samples at temperature {s.temperature:g} with {' and '.join(cuts)}, at most "
            f"{s.max_new_tokens} new tokens (card: {card}).")


def dpo_story(curves: dict, rounds_table, lengths) -> Said:
    """04: per round, steps, spikes or none, and how the chosen and rejected lengths compare in its pairs."""
    parts = []
    for name, df in curves.items():
        if df.empty:
            continue
        steps = int(rounds_table.loc[name, "steps"]) if name in rounds_table.index else len(df)
        parts.append(f"**{name}** ({steps} steps): " + spikes_said(df, name))
    if len(lengths):
        longer = "; ".join(f"{r} {row['chosen longer']}" for r, row in lengths.iterrows())
        every = all(str(v).split(" of ")[0] == str(v).split(" of ")[1] for v in lengths["chosen longer"])
        parts.append(f"The chosen answer is the longer one in {longer} pairs"
                     + (": in every pair, so at this size preferring the chosen answer and preferring the longer "
                        "one cannot be told apart." if every else
                        ": not in every pair, so the rounds can learn something besides length."))
    return say(*parts)


# ---- judging (06) ---------------------------------------------------------------------------------------------

def leaderboard_said(board) -> Said:
    """06 section 6: who ranks first, who shares a rank, and how many of the run's stages the top model beat."""
    top = board.index[0]
    firsts = [m for m in board.index if board.loc[m, "rank"] == 1]
    shared = f" (sharing rank 1 with {', '.join(m for m in firsts if m != top)}: their intervals overlap)" if len(firsts) > 1 else ""
    return say(f"**{top}** rates highest, {board.loc[top, 'elo']:.0f} Elo{shared}; **{board.index[-1]}** lowest, "
               f"{board.loc[board.index[-1], 'elo']:.0f}.",
               "Section 10 asks whether answer length explains the order." if "base" != top else
               "The untrained base model on top says the judge rewards something training did not improve: section "
               "10 measures whether it is answer length.")


def style_said(style: dict, board) -> Said:
    """06 section 10: what the length coefficient says, which models write longer, and what style control moves."""
    coef, lengths, styled = style["coef"], style["lengths"], style["styled"]
    longest, shortest = lengths["mean words"].idxmax(), lengths["mean words"].idxmin()
    words = f"{longest} writes the longest answers ({lengths.loc[longest, 'mean words']:.1f} words on average), " \
            f"{shortest} the shortest ({lengths.loc[shortest, 'mean words']:.1f})."
    if "tokens" not in coef:
        return say(words, "Length does not vary between the answers enough to fit a coefficient.")
    c = coef["tokens"]
    way = "favours the longer answer" if c > 0 else "favours the shorter answer"
    moved = (styled["elo (style controlled)"] - styled["elo"]).round(1)
    order_before, order_after = list(styled["elo"].sort_values(ascending=False).index), \
        list(styled["elo (style controlled)"].sort_values(ascending=False).index)
    same = "the order stays the same" if order_before == order_after else \
        f"the order changes to {', '.join(order_after)}"
    strength = "strongly" if abs(c) >= 50 else "mildly" if abs(c) >= 10 else "barely"
    return say(words, f"The judge {strength} {way}: {c:+.1f} Elo per standard deviation of relative length.",
               f"With length accounted for the ratings move by {', '.join(f'{m} {v:+.1f}' for m, v in moved.items())}, "
               f"and {same}.",
               "So part of the leaderboard above is a length preference, not quality." if abs(c) >= 10 else "")


def agreement_said(agreement: dict | None, names: tuple[str, str]) -> Said:
    """06 section 10: what this run's Cohen's kappa says about the choice of judge (Landis & Koch's bands)."""
    if agreement is None:
        return say("No second judge was run, so how much the ranking depends on the judge is not measured here.")
    k = agreement["kappa"]
    if k < 0:
        what = ("less than chance: where one judge picks a winner the other tends to pick the other model or a tie. "
                "The two judges would not produce the same leaderboard, so here the choice of judge decides the "
                "result as much as the models do")
    else:
        band = next(b for t, b in ((0.2, "slight"), (0.4, "fair"), (0.6, "moderate"), (0.8, "substantial"),
                                   (1.01, "almost perfect")) if k < t)
        what = (f"{band} agreement beyond chance (Landis and Koch's scale)"
                + (": a ranking by either judge would be hard to tell apart" if k >= 0.6 else
                   ": the judges often differ, so the ranking depends on which judge you pick"))
    return say(f"The two judges ({names[0]} and {names[1]}) give the same verdict on {agreement['agreement']:.0%} of "
               f"{agreement['matched']} battles; Cohen's kappa is {k:.2f}, {what}.")


def simulation_said(sim: dict, lo: float, hi: float) -> Said:
    """06 section 7b: the simulation's size (models, battles per question, intervals) and how its coverage came out."""
    flat, study, cov = sim["flat"], sim["study"], sim["table"]["coverage"]
    n_models = int(flat["coverage"]["model"].nunique())
    n_int = int(flat["reps"]) * n_models
    per_q = n_models * (n_models - 1)
    fq, fb = cov.iloc[0]["by question"], cov.iloc[0]["by battle"]
    eb, eq = cov.iloc[1]["by battle"], cov.iloc[1]["by question"]

    def verdict(x):
        return "consistent with 95%" if lo <= x <= hi else ("below" if x < lo else "above") + " that range"
    return say(
        f"This simulation: {n_models} models, {flat['n_questions']} questions, every pair in both orders "
        f"({per_q} battles per question), {flat['reps']} runs per setting, so {n_int} intervals per bootstrap; with "
        f"{n_int} intervals a true 95% coverage shows as {lo:.2f} to {hi:.2f}.",
        f"Without a question effect the battle bootstrap covered {fb:.3f} ({verdict(fb)}) and the question "
        f"bootstrap {fq:.3f} ({verdict(fq)}).",
        f"With a question effect of {study['question_sd']:g} Elo the battle bootstrap covered {eb:.3f} "
        f"({verdict(eb)}) and the question bootstrap {eq:.3f} ({verdict(eq)})"
        + (": resampling whole questions is the honest interval here." if eq > eb else
           ": in this run the question bootstrap did not do better, so read both intervals with care."),
        "A single example run (the plot's left panel) can miss even with honest intervals: about one interval in "
        "twenty should.")
