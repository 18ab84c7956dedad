"""05_benchmarks as a job where the GPUs are: lm-eval of every model, results.csv, chart and manifest.

    python -m med42_utils.benchmarks.job --size 8b --run-name demo [--force] [--set eval.limit=100]

At 8b/70b the notebook launches this (launch.run_job) and then shows what it wrote; at tiny the notebook
runs the same stage function in its own kernel.
"""
from __future__ import annotations

import sys

from ..hardware import in_kernel
from ..cli import job_parser, parse_override_args
from ..launch import job_plan, run_job
from ..manifest import stage_done
from ..notebook import start
from . import run as bench
from .stage import run_stage
from ..paths import shown

MODULE = "med42_utils.benchmarks.job"


def overview_frame(params):
    import pandas as pd

    return pd.DataFrame(bench.benchmark_overview(params)).set_index("task")


def evaluate(run, overview, force: bool = False, wait: bool = True) -> None:
    """The notebook's call: in-process at tiny, else a job on a GPU node (skipped when eval/ is done)."""
    params, out_dir = run.params, run.stage_dir("05_benchmarks")
    if in_kernel(params):
        run_stage(run, overview, force=force)
        return
    if stage_done(out_dir, params) and not force:
        print(f"already evaluated with these params: reading {shown(out_dir / 'manifest.json')} (force=True to redo)")
        return
    run_job(params, "eval", run.run_name, out_dir, MODULE, ["--force"] if force else [], wait=wait)


def eval_plan(run):
    """The eval job's plan (GPUs, memory, hours, script) from params alone: what 05's dry run renders at GPU sizes,
    without reading benchmark data or models."""
    return job_plan(run.params, "eval", run.run_name, run.stage_dir("05_benchmarks"), MODULE)


def main(argv: list[str] | None = None) -> int:
    ap = job_parser(__doc__.splitlines()[0])
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--only-model", default=None, help="evaluate this one model into eval/raw (a worker of the "
                    "one-model-per-GPU launch, benchmarks/workers.py) and stop")
    a = ap.parse_args(argv)
    run = start(a.size, a.run_name, parse_override_args(a.set))
    if a.only_model:
        bench.run_models(run.params, run.run_name, run.stage_dir("05_benchmarks"), resume=not a.force,
                         only=a.only_model)
        return 0
    run_stage(run, overview_frame(run.params), force=a.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
