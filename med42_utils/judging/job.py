"""06's GPU work as a job where the GPUs are: every model's answers, then every judgment (both cached on disk).

    python -m med42_utils.judging.job --size 8b --run-name demo [--set judge.num_questions=500]

At 8b/70b the notebook launches this (launch.run_job), then reads the cached answers and judgments with
a RecordedJudge (no model in the notebook kernel); at tiny the notebook answers and judges in-process.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ..hardware import in_kernel
from ..cli import job_parser, parse_override_args
from ..launch import job_plan, run_job
from ..notebook import start
from .judge import Judge, make_judge
from ..serve import serving_judge

MODULE = "med42_utils.judging.job"
JOB_RECORD = "job.json"


def answer_and_judge(params, run_name: str, judge_dir: Path, skip: bool = False, wait: bool = True) -> None:
    """The notebook's call before reading answers: at GPU sizes run the job (unless `skip`: done before)."""
    from ..models import model_stage_dirs

    if in_kernel(params) or skip:
        return
    run_job(params, "judge", run_name, Path(judge_dir), MODULE, wait=wait, outputs=[Path(judge_dir) / JOB_RECORD],
            inputs=model_stage_dirs(params, run_name, params.judge.models))


def judge_plan(params, run_name: str, judge_dir: Path):
    """The judging job's plan (GPUs, memory, hours, script) from params alone: what 06's dry run renders at GPU
    sizes, without reading questions or models."""
    return job_plan(params, "judge", run_name, Path(judge_dir), MODULE)


class RecordedJudge(Judge):
    """The judge the job used, by name only: reads its cached verdicts, never loads a model."""

    def __init__(self, name: str):
        super().__init__(name)
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    def compare_many(self, items):
        raise RuntimeError(f"{len(items)} judgments are missing from the cache; the judging job "
                           f"({MODULE}) writes them: re-run the notebook (force=False) to finish them")


def notebook_judge(params, judge_dir: Path) -> Judge:
    """tiny: the params' judge, loaded here. GPU sizes: the judge the job recorded in judge/job.json."""
    if in_kernel(params):
        return make_judge(params)
    record = Path(judge_dir) / JOB_RECORD
    if not record.is_file():
        raise FileNotFoundError(f"{record} is missing: the judging job has not finished; re-run the notebook")
    return RecordedJudge(json.loads(record.read_text())["judge"])


def main(argv: list[str] | None = None) -> int:
    from .battles import judge_all
    from .cache import JudgmentCache
    from .progress import ProgressLine
    from .questions import questions_from_params
    from ..extra_models import judged_models
    from .stage import JUDGMENTS, answer_all

    ap = job_parser(__doc__.splitlines()[0])
    a = ap.parse_args(argv)
    run = start(a.size, a.run_name, parse_override_args(a.set))
    params, judge_dir = run.params, run.stage_dir("06_elo_judging")
    questions, _ = questions_from_params(params)
    answers, info = answer_all(params, a.run_name, questions, judge_dir, progress=True)
    print(info.to_string(), flush=True)
    with serving_judge(params, judge_dir / "servers") as judge:  # the judge's own server, if it has one
        counts = judge_all(questions, answers, judge, JudgmentCache(judge_dir / JUDGMENTS), judged_models(params),
                           batch_size=params.judge.batch_size, progress=ProgressLine("verdicts"))
    (judge_dir / JOB_RECORD).write_text(json.dumps({"judge": judge.name, "counts": counts}, indent=1, default=str))
    print(counts, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
