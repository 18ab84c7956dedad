"""06_elo_judging's longer cells as calls: open the stage, judge, simulate, style, reliability, manifest.

Each function prints or displays what the notebook shows and returns what later cells use, so the notebook's code
cells stay a few lines and the tests reach this code.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..paths import shown
from .progress import ProgressLine


def open_stage(run, force: bool):
    """(judge_dir, model_dirs, already): the stage folder, the model folders whose manifests are recorded, and
    whether it finished before with the same params; cached answers and judgments are forgotten after `force`
    or a retrained model."""
    from ..manifest import changed_inputs, stage_done
    from ..models import model_stage_dirs
    from .stage import reset

    params = run.params
    judge_dir = run.stage_dir("06_elo_judging")
    model_dirs = model_stage_dirs(params, run.run_name, params.judge.models)
    already = stage_done(judge_dir, params, inputs=model_dirs) and not force
    if force or ((judge_dir / "manifest.json").is_file() and bool(changed_inputs(judge_dir))):
        reset(judge_dir)
    print("finished before with the same params: answers and judgments come from the cache" if already
          else f"writing to {shown(judge_dir)}")
    return judge_dir, model_dirs, already


def one_line_per_quarter(label: str, n_models: int):
    """A progress factory for answer_all: one progress line over all models together, at each quarter (a few lines
    in all, however slow the machine; a job log at 8b/70b keeps its own timed lines)."""
    line, state = ProgressLine(label, every_s=float("inf")), {"models": 0}

    def factory(stage: str):
        index = state["models"]
        state["models"] += 1

        def hook(done: int, total: int) -> None:
            if index == 0 or done > 0:
                line(index * total + done, n_models * total)
        return hook
    return factory


def print_first_answers(questions, answers, models) -> None:
    """06: every model's answer to the first question (labelled: at tiny, text from models trained for seconds)."""
    q0 = questions[0]
    print("Q:", q0["question"], "\n(answers: text from models trained for seconds at tiny; not medical advice)")
    for m in models:
        print(f"--- {m}: {answers[m][q0['id']][:300]!r}")


def judge_battles(params, judge_dir, questions, answers, models) -> dict:
    """Judge every pair in both orders (cached), turn verdicts into battles; prints the counts and one verdict."""
    from IPython.display import display

    from ..tables import wrapped
    from .battles import judge_all, judgments_frame, to_battles
    from .cache import JudgmentCache
    from .job import notebook_judge
    from .stage import JUDGMENTS

    cache = JudgmentCache(Path(judge_dir) / JUDGMENTS)
    judge = notebook_judge(params, judge_dir)  # tiny: loaded here; 8b/70b: the job's judge, by name
    counts = judge_all(questions, answers, judge, cache, models, batch_size=params.judge.batch_size,
                       progress=ProgressLine("verdicts"))
    judgments = judgments_frame(cache, judge.name)
    judgments = judgments[judgments.question_id.isin({q["id"] for q in questions})]
    battles, unparseable = to_battles(judgments)
    print(counts, "| cache:", cache.stats())
    print(f"{len(battles)} battles, of which {int((battles.winner == 'tie').sum())} ties; "
          f"unparseable judgments: {int(unparseable['judgments'].sum()) if len(unparseable) else 0}")
    if len(unparseable):
        display(wrapped(unparseable))  # each reason whole
    print("one verdict:", judgments["raw"].iloc[0][-160:])
    return {"judge": judge, "judgments": judgments, "battles": battles, "unparseable": unparseable}


def simulation(models: list[str], seed: int, n_questions: int = 100, question_sd: float = 300.0,
               reps: int = 50, rounds: int = 200) -> dict:
    """7b: known ratings 100 Elo apart, one study without and one with a question effect; plots, prints each
    example run's misses, and returns both studies and the coverage table."""
    import matplotlib.pyplot as plt

    from .plots import plot_recovery
    from .simulate import coverage_table, example_misses, rank_inversions, recovery_study

    truth = {f"model {i + 1}": 1100.0 - 100.0 * i for i in range(len(models))}
    flat = recovery_study(truth, n_questions=n_questions, reps=reps, rounds=rounds, seed=seed)
    study = recovery_study(truth, n_questions=n_questions, reps=reps, rounds=rounds, seed=seed, question_sd=question_sd)
    plot_recovery(study)
    plt.show()
    for st, label in ((flat, "no question effect"), (study, f"question effect, sd {question_sd:g} Elo")):
        misses, flips = example_misses(st), rank_inversions(st)
        said = "; ".join(f"{r.model} by {r.kind}: true {r.true:.1f} outside [{r.lower:.1f}, {r.upper:.1f}]"
                         for r in misses.itertuples()) or "every interval holds the truth"
        flipped = "; ".join(f"{b} estimated above the stronger {a}" for a, b in flips) or "ranks in the true order"
        print(f"example run, {label}: {said}; {flipped}")
    return {"truth": truth, "flat": flat, "study": study, "table": coverage_table(flat, study)}


def style_report(board, battles, answers, params) -> dict:
    """10: answer lengths (words) and markdown per model, Elo with style control and its question bootstrap."""
    from IPython.display import display

    from .style import battle_features, bootstrap_style_bt, length_table, style_bt

    lengths = length_table(answers).rename(columns={"mean_tokens": "mean words", "median_tokens": "median words"})
    display(lengths.round(1))  # words: whitespace-separated, what a reader counts
    X = battle_features(battles, answers)
    elo_style, coef = style_bt(battles, X)
    boot = bootstrap_style_bt(battles, X, rounds=params.judge.elo.bootstrap_rounds, by="question", seed=params.seed)
    styled = pd.DataFrame({"elo": board["elo"], "elo (style controlled)": elo_style, "lower": boot.quantile(0.025),
                           "upper": boot.quantile(0.975), "mean words": lengths["mean words"]}).loc[board.index]
    display(styled.round(1))
    named = {("length (words)" if k == "tokens" else k): v for k, v in coef.items()}
    print("judge's style coefficients, Elo per standard deviation:",
          ", ".join(f"{k} {v:+.1f}" for k, v in named.items()) or "none (no style feature varies)")
    return {"lengths": lengths, "elo_style": elo_style, "coef": coef, "boot": boot, "styled": styled}


def reliability_report(params, battles, board, judge, judge_dir, questions, answers, models, second_verdicts) -> dict:
    """10: swap agreement per pair, separability by both bootstraps, and agreement with a second judge (kappa)."""
    from IPython.display import display

    from .battles import judge_all, judgments_frame, to_battles
    from .cache import JudgmentCache
    from .reliability import judge_agreement, separability, stand_in_second_judge, swap_agreement
    from .stage import SECOND_JUDGMENTS
    from .verdicts import read_verdicts, verdicts_to_battles

    swaps = swap_agreement(battles)
    display(swaps)
    sep = {kind: separability(board, kind) for kind in ("battle", "question")}
    for kind, s in sep.items():
        print(f"separability by {kind}: {s['separated']} of {s['pairs']} model pairs apart = {s['separability']:.2f}")
    second, other, other_name, agreement = stand_in_second_judge(params), None, None, None
    if second_verdicts:
        other, other_name = verdicts_to_battles(read_verdicts(second_verdicts)), Path(str(second_verdicts)).name
    elif second is not None:
        cache = JudgmentCache(Path(judge_dir) / SECOND_JUDGMENTS)  # apart from the judge's own
        judge_all(questions, answers, second, cache, models, batch_size=params.judge.batch_size)
        other, other_name = to_battles(judgments_frame(cache, second.name))[0], second.name
    else:
        print("no second judge: pass second_verdicts (a verdicts file) to measure agreement")
    if other is not None:
        agreement = judge_agreement(battles, other, (judge.name, other_name))
        print(f"agreement with {other_name}: {agreement['agreement']:.2f} on {agreement['matched']} verdicts, "
              f"Cohen's kappa {agreement['kappa']:.2f}")
        display(agreement["confusion"])
    return {"swaps": swaps, "sep": sep, "agreement": agreement, "other_name": other_name}


def write_judge_manifest(judge_dir, params, model_dirs, run_name: str, *, judged: dict, models, questions,
                         dropped_questions, board, pb, emp, sim: dict, style: dict, rel: dict, answer_info) -> Path:
    """11: the stage manifest: what was judged, the ratings, win rates, position bias, the simulation's coverage,
    style control, reliability and how many answers were generated or cached."""
    from ..manifest import write_manifest

    judgments, battles, unparseable = judged["judgments"], judged["battles"], judged["unparseable"]
    flat, study, order = sim["flat"], sim["study"], list(emp.index)

    def by_kind(st, col):
        return {kind: float(g[col].mean()) for kind, g in st["coverage"].groupby("kind")}
    agreement = rel["agreement"]
    return write_manifest(
        judge_dir, "06_elo_judging", params, inputs=model_dirs, run_name=run_name,
        judge=judged["judge"].name, models=models, questions=len(questions), questions_dropped=dropped_questions,
        judgments=int(len(judgments)), battles=int(len(battles)),
        unparseable={r: int(n) for r, n in zip(unparseable.get("reason", []), unparseable.get("judgments", []))},
        bootstrap_rounds=params.judge.elo.bootstrap_rounds,
        elo={m: {k: float(board.loc[m, k]) for k in board.columns if k != "battles"} | {"battles": int(board.loc[m, "battles"])}
             for m in board.index},
        position_bias={k: v for k, v in pb.items() if k not in ("per_pair", "per_model")},
        win_rates={m: {k: float(v) for k, v in row.items()} for m, row in pb["per_model"].iterrows()},
        empirical_win_rate={a: {b: float(emp.loc[a, b]) for b in order if b != a} for a in order},
        simulation={"n_questions": study["n_questions"], "reps": study["reps"], "coverage": by_kind(flat, "coverage"),
                    "question_sd": study["question_sd"], "coverage_with_question_effect": by_kind(study, "coverage"),
                    "width_with_question_effect": by_kind(study, "mean_width")},
        answer_length={m: float(v) for m, v in style["lengths"]["mean words"].items()},
        style_control={"elo": {m: float(v) for m, v in style["elo_style"].items()},
                       "lower": {m: float(v) for m, v in style["boot"].quantile(0.025).items()},
                       "upper": {m: float(v) for m, v in style["boot"].quantile(0.975).items()},
                       "coefficients": {k: float(v) for k, v in style["coef"].items()}},
        swap_agreement={p: float(v) for p, v in rel["swaps"]["swap_agreement"].items()},
        separability={k: float(s["separability"]) for k, s in rel["sep"].items()},
        second_judge=None if agreement is None else {"name": rel["other_name"], "matched": agreement["matched"],
                                                     "agreement": agreement["agreement"], "kappa": agreement["kappa"]},
        answers={r["model"]: {"generated": int(r["generated"]), "cached": int(r["cached"])} for _, r in answer_info.iterrows()},
    )


def coverage_range(study: dict, level: float = 0.95) -> tuple[float, float]:
    """Where the observed coverage of `reps x models` intervals falls 95% of the time if the true coverage is
    `level` (binomial): the range a simulated coverage must land in to be consistent with it."""
    from scipy.stats import binom

    n = int(study["reps"]) * int(study["coverage"]["model"].nunique())
    return float(binom.ppf(0.025, n, level) / n), float(binom.ppf(0.975, n, level) / n)


def judge_expectations(judge_dir, pb: dict, sim: dict, biased: dict, n_questions: int, models) -> object:
    """06's checks: every pair judged in both orders; the simulation recovers known ratings (question bootstrap
    covers about 95% without a question effect and more often than the battle bootstrap with one); a
    position-biased judge's bonus cancels when both orders are rated."""
    from ..expectations import expect, show_expectations

    cov = sim["table"]["coverage"]
    lo, hi = coverage_range(sim["flat"])
    flat_q, eff_b, eff_q = cov.iloc[0]["by question"], cov.iloc[1]["by battle"], cov.iloc[1]["by question"]
    t = biased["table"]
    both_err = float((t["both orders"] - t["true"]).abs().max())
    one_err = float((t.iloc[:, 2] - t["true"]).abs().max())
    n_pairs = len(models) * (len(models) - 1) // 2
    items = [
        expect("every pair of models is judged on every question in both orders",
               pb["swapped_pairs"] == n_pairs * n_questions,
               f"{pb['swapped_pairs']} of {n_pairs} pairs x {n_questions} questions seen in both orders"),
        expect("without a question effect the question bootstrap holds the truth about 95% of the time",
               lo <= flat_q <= hi, f"coverage {flat_q:.3f}, consistent with 95% between {lo:.3f} and {hi:.3f}"),
        expect("with a question effect the battle bootstrap covers less often than the question bootstrap",
               eff_b < eff_q, f"by battle {eff_b:.3f}, by question {eff_q:.3f}"),
        expect("a judge's first-position bonus cancels when both orders are rated (closer to the truth than one order)",
               both_err < one_err, f"largest error {both_err:.1f} Elo from both orders, {one_err:.1f} from one order"),
    ]
    return show_expectations(judge_dir, "06_elo_judging", items)


def judge_swap(size: str, run_name: str) -> dict:
    """Exercise 6 (docs/teaching.md): the same answers rated by 06's judge and by the second judge whose verdicts
    06 cached (at tiny, the other reference metric): both leaderboards, whether their orders agree, and kappa."""
    from ..params import load_params
    from ..paths import run_dir
    from .battles import judgments_frame, to_battles
    from .cache import JudgmentCache
    from .reliability import judge_agreement
    from .stage import JUDGMENTS, SECOND_JUDGMENTS, rate

    params = load_params(size)
    d = run_dir(size, run_name) / "judge"
    if not (d / SECOND_JUDGMENTS).is_file():
        raise FileNotFoundError(f"{shown(d / SECOND_JUDGMENTS)} is missing: run 06 for run {run_name!r} first "
                                "(at tiny it caches the second judge's verdicts)")
    boards, battles = {}, {}
    for file in (JUDGMENTS, SECOND_JUDGMENTS):
        frame = judgments_frame(JudgmentCache(d / file))
        name = str(frame["judge"].iloc[0]) if "judge" in frame else file
        battles[name] = to_battles(frame)[0]
        boards[name] = rate(battles[name], params)["leaderboard"][["elo", "rank"]]
    names = tuple(boards)
    agreement = judge_agreement(battles[names[0]], battles[names[1]], names)
    orders = [list(b.index) for b in boards.values()]
    return {"boards": boards, "same_order": orders[0] == orders[1], "kappa": agreement["kappa"], "names": names}


if __name__ == "__main__":  # python -m med42_utils.judging.report tiny demo
    import sys

    swap = judge_swap(sys.argv[1], sys.argv[2])
    for name, board in swap["boards"].items():
        print(f"{name}\n{board.round(1).to_string()}\n")
    print(f"Cohen's kappa {swap['kappa']:.2f}; the two judges rank the models "
          f"{'in the same order' if swap['same_order'] else 'in different orders'}")
