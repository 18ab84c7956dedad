"""04's sample answers where the GPUs are: one answer per model to one question, into dpo/samples.json.

    python -m med42_utils.dpo.samples_job --size 8b --run-name demo --question "..." --stages sft dpo_round1

At tiny the notebook samples in its own kernel (report.sample_answers); at 8b/70b it launches this job
(launch.run_job) and shows the file it wrote.
"""
from __future__ import annotations

import json
import sys

from ..hardware import in_kernel
from ..cli import job_parser, parse_override_args
from ..launch import run_job
from ..params import Params, load_params
from ..paths import run_dir
from .report import sample_answers

MODULE = "med42_utils.dpo.samples_job"
SAMPLES = "samples.json"


def answers_where_gpus_are(params: Params, run_name: str, question: str, stages: list[str], stage: str = "dpo",
                           wait: bool = True):
    """A DataFrame (model, answer): sampled here at tiny, by a job on a GPU node at 8b/70b, which writes
    <run>/<stage>/samples.json (stage: the folder of the notebook asking, "sft" or "dpo")."""
    import pandas as pd

    if in_kernel(params):
        return sample_answers(params, run_name, question, stages)
    from ..models import model_stage_dirs

    out = run_dir(params.size, run_name) / stage
    run_job(params, f"{stage}_samples", run_name, out, MODULE,
            ["--question", question, "--stages", *stages, "--stage", stage], wait=wait, models=list(stages),
            outputs=[out / SAMPLES], inputs=model_stage_dirs(params, run_name, stages))
    return pd.DataFrame(json.loads((out / SAMPLES).read_text()))


def main(argv: list[str] | None = None) -> int:
    ap = job_parser(__doc__.splitlines()[0])
    ap.add_argument("--question", required=True)
    ap.add_argument("--stages", nargs="+", required=True)
    ap.add_argument("--stage", default="dpo", help="folder under the run for samples.json")
    a = ap.parse_args(argv)
    params = load_params(a.size, parse_override_args(a.set))
    df = sample_answers(params, a.run_name, a.question, a.stages)
    out = run_dir(params.size, a.run_name) / a.stage / SAMPLES
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(df.to_dict("records"), indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())


def stage_answers(params: Params, run_name: str, question: str, stages: list[str], wait: bool = True):
    """04 section 6: one sampled answer per stage (here at tiny, a GPU job at 8b/70b), with its length in tokens
    and words and whether it hit the generation cap."""
    from ..models import load_tokenizer, resolve_model
    from .lengths import answer_lengths

    answers = answers_where_gpus_are(params, run_name, question, stages, wait=wait)
    tok = load_tokenizer(params, resolve_model(params, run_name, "sft"))
    return answer_lengths(answers, tok, params.judge.sampling.max_new_tokens)

