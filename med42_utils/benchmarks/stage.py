"""What 05_benchmarks runs: evaluate every model, tabulate against Table 4, save, write the manifest."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..manifest import stage_done, write_manifest
from ..models import model_stage_dirs
from ..paths import resolve
from . import results as br
from . import run as bench


def run_stage(run, overview: pd.DataFrame, force: bool = False) -> bool:
    """Evaluate params.eval.models on params.eval.tasks into the eval/ folder; False when skipped (done)."""
    params, out_dir = run.params, run.stage_dir("05_benchmarks")
    inputs = model_stage_dirs(params, run.run_name, params.eval.models)
    if stage_done(out_dir, params, inputs=inputs) and not force:
        print(f"already evaluated with these params: reading {out_dir / 'manifest.json'} (force=True to redo)")
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
