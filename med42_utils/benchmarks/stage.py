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
    evaluated = bench.run_models(params, run.run_name, out_dir)
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
    local = [resolve(params.eval.data_dir)] if params.eval.data_dir and "local" in bench.task_metadata(params)["med42_sources"].values() else []
    write_manifest(out_dir, "05_benchmarks", params, inputs=inputs, input_files=local,
                   shift=None if shift is None else shift.to_dict(orient="index"),
                   tasks=list(scored.index), models=evaluated, chance=chance,
                   skipped=overview.loc[overview["source"] == "skipped", "note"].to_dict(),
                   data_source=params.eval.data_source, sources=bench.task_metadata(params)["med42_sources"],
                   limit=params.eval.limit, seed=params.seed,
                   rows=scored[["source", "rows", "kept", "scored", "sample", "image questions", "dropped"]].to_dict(orient="index"),
                   reference_rows=br.reference_rows(params.model.display_name)[:2],
                   table=table.to_dict(orient="index"), results_csv="results.csv", chart="results.png")
    return True


def training_shift(evaluated: dict[str, dict]) -> pd.DataFrame | None:
    """choice_shift from the first trained stage (sft) to the last one; None without both or without choices."""
    import json

    stages = [s for s in evaluated if s != "base"]
    if len(stages) < 2 or not all("choices" in evaluated[s] for s in (stages[0], stages[-1])):
        return None
    first, last = (json.loads(Path(evaluated[s]["choices"]).read_text()) for s in (stages[0], stages[-1]))
    shift = br.choice_shift(first, last)
    shift.attrs["stages"] = (stages[0], stages[-1])
    return shift
