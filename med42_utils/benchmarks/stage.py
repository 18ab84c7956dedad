"""What 05_benchmarks runs: evaluate every model, tabulate against Table 4, save, write the manifest."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from ..manifest import stage_done, write_manifest
from ..models import model_stage_dirs
from ..paths import resolve, shown
from . import results as br
from . import run as bench

if TYPE_CHECKING:
    from ..narrate import Said


def run_stage(run, overview: pd.DataFrame, force: bool = False) -> bool:
    """Evaluate params.eval.models on params.eval.tasks into the eval/ folder; False when skipped (done)."""
    params, out_dir = run.params, run.stage_dir("05_benchmarks")
    inputs = model_stage_dirs(params, run.run_name, params.eval.models)
    if stage_done(out_dir, params, inputs=inputs) and not force:
        print(f"already evaluated with these params: reading {shown(out_dir / 'manifest.json')} (force=True to redo)")
        return False
    from ..cli import override_args
    from ..inference_plan import eval_slots
    from ..launch import params_overrides

    evaluated = bench.run_models(params, run.run_name, out_dir, resume=not force, slots=eval_slots(params),
                                 worker_args=override_args(params_overrides(params)))
    scored = overview[overview["source"] != "skipped"]
    chance = {t: r["chance %"] / 100 for t, r in scored.iterrows()}
    table = br.results_table({s: e["scores"] for s, e in evaluated.items()}, params.model.display_name, chance)
    table.to_csv(out_dir / "results.csv")
    paper = any(c.startswith("paper ") for c in table.columns)
    title = f"{params.size}: our models vs Table 4" if paper else f"{params.size}: our models, 95% intervals"
    br.bar_chart(table, Path(out_dir) / "results.png", title=title).clf()
    shift = training_shift(evaluated)
    if shift is not None:
        shift.to_csv(out_dir / "shift.csv")
    lessons = write_lessons(evaluated, out_dir)
    local = [resolve(params.eval.data_dir)] if params.eval.data_dir and "local" in bench.task_metadata(params)["med42_sources"].values() else []
    write_manifest(out_dir, "05_benchmarks", params, inputs=inputs, input_files=local,
                   shift=None if shift is None else shift.to_dict(orient="index"),
                   shift_stages=None if shift is None else list(shift.attrs["stages"]),
                   tasks=list(scored.index), models=evaluated, chance=chance,
                   skipped=overview.loc[overview["source"] == "skipped", "note"].to_dict(),
                   data_source=params.eval.data_source, sources=bench.task_metadata(params)["med42_sources"],
                   limit=params.eval.limit, seed=params.seed,
                   rows=scored[["source", "rows", "kept", "scored", "sample", "image questions", "dropped"]].to_dict(orient="index"),
                   reference_rows=br.reference_rows(params.model.display_name)[:2],
                   table=table.to_dict(orient="index"), results_csv="results.csv", chart="results.png",
                   lessons=lessons, letter_models=[s for s in evaluated if any(t.endswith("_letters") for t in evaluated[s]["scores"])])
    return True


def load_questions(evaluated: dict[str, dict]) -> dict[str, dict[str, list[dict]]]:
    """{model: {task: per-question records}} from each model's questions file."""
    import json

    return {s: json.loads(Path(e["questions"]).read_text()) for s, e in evaluated.items() if e.get("questions")}


def framing_table(scores: dict[str, dict[str, dict]]) -> pd.DataFrame:
    """Per exam task and model scored both ways: acc in the paper's full-answer framing and in the letter framing."""
    from .run import LETTER_TASKS

    rows = {}
    for t, lt in LETTER_TASKS.items():
        for m, sc in scores.items():
            if t in sc and lt in sc:
                row = rows.setdefault(br.column(t), {"n": sc[t]["n"]})
                row[f"{m} full answer"] = round(100 * sc[t]["acc"], 1)
                row[f"{m} letters"] = round(100 * sc[lt]["acc"], 1)
    return pd.DataFrame.from_dict(rows, orient="index")


def write_lessons(evaluated: dict[str, dict], out_dir: Path) -> dict[str, str]:
    """The tables 05 teaches from, as CSVs in eval/: both metrics, both framings, the length bias, MMLU per
    subject, and McNemar tests of the first two models (base vs sft) on the same questions."""
    questions = load_questions(evaluated)
    scores = {s: e["scores"] for s, e in evaluated.items()}
    tables = {"metrics": br.metrics_table(scores), "framings": framing_table(scores),
              "length_bias": br.length_bias({m: {t: r for t, r in q.items() if not t.endswith("_letters")}
                                              for m, q in questions.items()})}
    mmlu = [t for t in ("med42_mmlu_medical", "med42_mmlu_medical_letters") if any(t in q for q in questions.values())]
    for t in mmlu:
        tables[f"subjects_{br.column(t).split()[-1].strip('()').lower()}"] = br.per_subject(
            {m: q for m, q in questions.items() if t in q}, t)
    models = list(questions)
    if len(models) >= 2:
        tables["paired"] = br.paired_tests(questions, models[0], models[1])
    files = {}
    for name, df in tables.items():
        if len(df):
            df.to_csv(Path(out_dir) / f"{name}.csv")
            files[name] = f"{name}.csv"
    return files


def training_shift(evaluated: dict[str, dict]) -> pd.DataFrame | None:
    """choice_shift from the first trained stage (sft) to the last one; None without both or without choices."""
    import json

    stages = [s for s in evaluated if s != "base" and not evaluated[s].get("extra")]
    if len(stages) < 2 or not all("choices" in evaluated[s] for s in (stages[0], stages[-1])):
        return None
    first, last = (json.loads(Path(evaluated[s]["choices"]).read_text()) for s in (stages[0], stages[-1]))
    both = [t for t in first if t in last]  # the letter framing may cover only some models
    shift = br.choice_shift({t: first[t] for t in both}, {t: last[t] for t in both})
    shift.attrs["stages"] = (stages[0], stages[-1])
    return shift


def trained_stages(manifest: dict) -> list[str]:
    """The run's own trained models in order (sft, dpo_round1, ...): not base, not an extra model."""
    return [s for s, e in manifest["models"].items() if s != "base" and not e.get("extra")]


def stage_comparison(table: pd.DataFrame, manifest: dict, out_dir) -> dict:
    """05 section 5's tables: SFT against base (interval and McNemar), which stages are apart, and how far the
    rounds moved the choices from SFT to the last DPO round (labelled with the stages actually compared)."""
    from IPython.display import display

    out: dict = {"verdict": None}
    stages = list(manifest["models"])
    if "paired" in manifest.get("lessons", {}):
        paired = pd.read_csv(Path(out_dir) / manifest["lessons"]["paired"], index_col=0)
        first, second = stages[0], stages[1]
        print(f"{second} against {first}: acc, {first}'s interval, and McNemar's paired test")
        out["verdict"] = br.stage_verdict(table, paired, first, second)
        display(out["verdict"], paired)
    display(br.stages_apart(table, stages))
    if manifest.get("shift"):
        shift = pd.DataFrame.from_dict(manifest["shift"], orient="index")
        a, b = manifest.get("shift_stages") or (trained_stages(manifest)[0], trained_stages(manifest)[-1])
        display(shift)
        print(f"{a} -> {b}: {int(shift['picks changed'].sum())} of {int(shift['questions'].sum())} picks changed; "
              f"choices moved relative to each other by {shift['mean relative shift (nats)'].mean():.2f} nats on "
              f"average, against a mean gap of {shift['mean best-vs-runner-up gap (nats)'].mean():.2f} nats between "
              "the best and the runner-up choice")
    return out


def eval_expectations(out_dir, table: pd.DataFrame, manifest: dict, verdict):
    """05's checks: the length lesson (acc follows option length, acc_norm less so) and, where the taught facts
    ran, SFT above base on them with McNemar p < 0.05."""
    from ..expectations import expect, show_expectations

    items = []
    lb_file = manifest.get("lessons", {}).get("length_bias")
    if lb_file and "base" in manifest["models"]:
        lb = pd.read_csv(Path(out_dir) / lb_file, index_col=0)
        n = lb["n"].sum()
        acc, norm = ((lb[f"base {m} pick shortest %"] * lb["n"] / 100).round().sum() for m in ("acc", "acc_norm"))
        items.append(expect("an untrained model's summed log-likelihood (acc) picks a shortest option almost always",
                            acc >= 0.9 * n, f"base: {int(acc)} of {int(n)} questions whose options differ in length"))
        items.append(expect("acc_norm (per character) breaks that habit", norm < acc,
                            f"base acc_norm picked a shortest option in {int(norm)} of {int(n)}"))
    if verdict is not None and "Taught facts" in verdict.index:
        r = verdict.loc["Taught facts"]
        items.append(expect("SFT beats base on the facts its data taught (above base's interval, McNemar p < 0.05)",
                            r.iloc[4] == "above" and r["McNemar p"] < 0.05,
                            f"base {r.iloc[1]:.1f}%, sft {r.iloc[3]:.1f}%, {r.iloc[4]} base's interval, p = {r['McNemar p']:.2g}"))
    return show_expectations(out_dir, "05_benchmarks", items)


def describe_setup(params) -> None:
    """05's opening lines: the tasks, the models, the backend, and whether chat template and system prompt apply."""
    from ..extra_models import eval_models

    print("tasks :", ", ".join(params.eval.tasks))
    print("models:", ", ".join(eval_models(params)[0]), "| backend:", params.eval.backend,
          "| chat template:", params.eval.apply_chat_template, "| system prompt:", params.eval.system_prompt)


def show_framings(params, run, plan_only: bool = False):
    """05 section 2: the first scored question as lm-eval renders it (chat template, full answers) and in the
    letter framing; returns the tokenizer. plan_only (a GPU size's dry run): reads nothing, returns None."""
    if plan_only:
        print("dry run at a GPU size: no tokenizer or benchmark row is read here")
        return None
    from transformers import AutoTokenizer

    from ..chat import SYSTEM_PROMPT, render, with_system_prompt
    from ..models import resolve_model
    from .tasks.utils import letter_choices, letter_prompt

    tok = AutoTokenizer.from_pretrained(resolve_model(params, run.run_name, "base"))
    doc = bench.scored_docs(params, bench.eval_tasks(params)[0][0])[1][0]  # the first question scored
    messages = [{"role": "user", "content": doc["query"]}]
    print(render(tok, with_system_prompt(messages, SYSTEM_PROMPT) if params.eval.system_prompt else messages,
                 add_generation_prompt=True))
    print("continuations scored:", doc["choices"], "| correct:", doc["choices"][doc["answer"]])
    print("\n--- the same question in the letter framing (no chat template) ---")
    print(letter_prompt(doc))
    print("continuations scored:", [f" {c}" for c in letter_choices(doc)], "| correct:", letter_choices(doc)[doc["answer"]])
    return tok


def taught_check_report(params, run, tok, plan_only: bool = False):
    """05's taught facts checked against this run's curated SFT data (answer in it, wrong options not, same
    token count per option, not flagged by decontamination); None when the task is off, 01 has not run, or in a
    GPU size's dry run (plan_only: reads nothing)."""
    from . import taught
    from ..paths import shown

    if plan_only:
        print("dry run at a GPU size: the taught-facts check reads the tokenizer and 01's data; skipped")
        return None
    curated_dir = run.stage_dir("01_data_curation") / "curated"
    if taught.TASK not in params.eval.tasks:
        print(f"{taught.TASK} is not in eval.tasks at size {params.size}: nothing to check")
        return None
    if not curated_dir.is_dir():
        print(f"no curated SFT data at {shown(curated_dir)}: run 01 first to check the taught facts against it")
        return None
    import datasets

    check = taught.taught_check(taught.taught_rows(params.eval.data_dir),
                                taught.sft_texts(datasets.load_from_disk(str(curated_dir))),
                                tok, params.data.decontam.ngram, params.data.decontam.threshold)
    print(f"{len(check)} questions | answer in this run's SFT data: {int(check['answer in SFT data'].sum())} | "
          f"wrong options in it: {int(check['wrong options in SFT data'].sum())} | same tokens in every option: "
          f"{int(check['same tokens'].sum())} | flagged by decontamination: {int(check['contaminated'].sum())}")
    return check


def eval_story(table, manifest: dict) -> Said:
    """05: how many questions decide a score, where the last model sits against chance, what the Avg. row can and
    cannot say, and the taught facts through every stage."""
    import pandas as pd

    from ..narrate import say, share
    from .results import TABLE4_LABELS

    stages = [s for s, e in manifest["models"].items() if not e.get("extra")]
    t4 = table[table.index.isin(TABLE4_LABELS)]
    parts = []
    if len(t4):
        n = int(t4["n"].min())
        last = stages[-1]
        near = [b for b, r in t4.iterrows() if f"{last} low" in r and r[f"{last} low"] <= r["chance"] <= r[f"{last} high"]]
        parts.append(f"Each Table 4 task scored {n if n == t4['n'].max() else f'{n} to {int(t4.n.max())}'} questions "
                     f"here, so one question moves a score by {100 / n:.1f} points. {last}'s interval holds the "
                     f"chance level on {share(len(near), len(t4))} Table 4 tasks.")
    if "Avg." in table.index and len(stages) > 1:
        a, b = stages[0], stages[1]
        avg_a, avg_b = table.loc["Avg.", a], table.loc["Avg.", b]
        apart = [x for x, r in t4.iterrows() if f"{a} low" in r and not r[f"{a} low"] <= r[b] <= r[f"{a} high"]]
        word = "above" if avg_b > avg_a else "below" if avg_b < avg_a else "level with"
        verdict = ("so the average difference is not evidence that SFT helps or hurts: on every task the two "
                   "could not be told apart" if not apart else f"and {b} is outside {a}'s interval on "
                   f"{', '.join(apart)}")
        parts.append(f"The Avg. row puts {b} ({avg_b:.1f}) {word} {a} ({avg_a:.1f}); {b}'s score is inside {a}'s "
                     f"95% interval on {share(len(t4) - len(apart), len(t4))} Table 4 tasks, {verdict}.")
    if "Taught facts" in table.index:
        r = table.loc["Taught facts"]
        path = " -> ".join(f"{s} {r[s]:.0f}%" for s in stages if pd.notna(r.get(s)))
        parts.append(f"Taught facts through the stages ({int(r['n'])} questions): {path}.")
        if len(stages) > 2:
            sft, end = stages[1], stages[-1]
            inside = r[f"{sft} low"] <= r[end] <= r[f"{sft} high"]
            diff = round((r[sft] - r[end]) * r["n"] / 100)
            move = "lost" if diff > 0 else "gained"
            parts.append(f"From {sft} to {end} the rounds {move} {abs(diff)} of {int(r['n'])} questions; "
                         + (f"{end}'s score is inside {sft}'s interval, so this is within what chance moves: the "
                            "preference pairs do not contain these facts, and DPO keeps the model near its reference."
                            if inside else f"{end}'s score is outside {sft}'s interval: the preference rounds "
                            "changed what the model says about the facts SFT taught."))
    return say(*parts)

