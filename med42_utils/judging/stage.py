"""What 06_elo_judging runs, in a few calls: answer with every model, judge every pair, rate."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Callable

import pandas as pd

from ..models import resolve_model
from .answers import generate_answers, read_answers
from .elo import EloScale
from .progress import ProgressLine
from .verdicts import rate_battles

JUDGMENTS = "judgments.jsonl"
SECOND_JUDGMENTS = "judgments_second_judge.jsonl"  # 06's reliability check: a second judge's verdicts
CACHE_KEY = "cache_key.json"


def reset(judge_dir: Path) -> None:
    """force=True: forget cached answers and judgments of this run."""
    shutil.rmtree(Path(judge_dir) / "answers", ignore_errors=True)
    for name in (JUDGMENTS, SECOND_JUDGMENTS):
        (Path(judge_dir) / name).unlink(missing_ok=True)


def cache_key(params, run_name: str) -> dict:
    """What the cached answers and judgments were made from: each model (its stage manifest, or the base model
    and, at tiny, its build; an extra model's Hub id, folder, answers file hash or tiny seed), the answer sampling, the system prompt, and the judge's settings."""
    from ..chat import SYSTEM_PROMPT
    from ..manifest import MANIFEST, fingerprint
    from ..stages import stage_model_dir
    from ..tiny_model import BUILD_INFO

    from ..extra_models import extra_fingerprint

    models = {}
    for m in params.extra_models:
        models[m.name] = extra_fingerprint(params, m)
    for stage in params.judge.models:
        if stage == "base":
            info = Path(resolve_model(params, run_name, "base")) / BUILD_INFO
            models[stage] = info.read_text() if info.is_file() else params.model.base
        else:
            d = stage_model_dir(params, run_name, stage).parent
            models[stage] = fingerprint(d) if (d / MANIFEST).is_file() else "missing"
    j = params.judge
    judge = j.model_dump(include={"backend", "model", "prompt", "allow_ties", "tie_margin", "reference_metric",
                                  "judge_sampling", "max_retries"})
    return {"models": models, "sampling": j.sampling.model_dump(),
            "system_prompt": hashlib.sha256(SYSTEM_PROMPT.encode()).hexdigest()[:16], "judge": judge}


def refresh_caches(params, run_name: str, judge_dir: Path) -> str | None:
    """Keep cached answers and judgments only while what they were made from is unchanged (an interrupted run
    resumes); after a retrained model or changed sampling or judge they are forgotten, and the reason returned."""
    judge_dir = Path(judge_dir)
    key = cache_key(params, run_name)
    path = judge_dir / CACHE_KEY
    old = json.loads(path.read_text()) if path.is_file() else None
    why = None
    if old is not None and old != key:
        changed = [k for k in key if old.get(k) != key[k]]
        if "models" in changed:
            changed = [f"model {m}" for m in key["models"] if old.get("models", {}).get(m) != key["models"][m]] + \
                      [c for c in changed if c != "models"]
        why = "cached answers and judgments were made for another " + ", ".join(changed) + ": redoing them"
        reset(judge_dir)
    elif old is None and ((judge_dir / "answers").exists() or (judge_dir / JUDGMENTS).exists()):
        why = "cached answers and judgments carry no record of what made them: redoing them"
        reset(judge_dir)
    judge_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(key, indent=1, sort_keys=True))
    return why


def answer_all(params, run_name: str, questions: list[dict], judge_dir: Path,
               progress: bool | Callable[[str], Callable[[int, int], None]] = False) -> tuple[dict, pd.DataFrame]:
    """Answers of every params.judge.models stage and every extra model: ({model: {question_id: text}}, one row
    of counts per model). An extra model given as a file of answers is read, never generated; a question it
    does not answer is an error naming the file.

    progress: True prints plain lines per model ("answers sft: 8/14 (57%), 2.1/s, ETA 0:00:03"); or give a
    factory label -> (done, total) hook.
    """
    why = refresh_caches(params, run_name, judge_dir)
    if why:
        print(why, flush=True)
    if progress is True:
        progress = ProgressLine.factory("answers")
    from ..extra_models import answers_file, find_extra, judged_models

    rows, answers = [], {}
    for stage in judged_models(params):
        extra = find_extra(params, stage)
        if extra is not None and extra.answers is not None:
            path = answers_file(extra)
            given = read_answers(path)
            missing = [str(q["id"]) for q in questions if str(q["id"]) not in given]
            if missing:
                raise ValueError(f"extra model '{stage}': {path} has no answer for {len(missing)} of {len(questions)} "
                                 f"questions (e.g. question_id {missing[0]!r}); add lines "
                                 f'{{"question_id": ..., "answer": ...}} for them')
            answers[stage] = {str(q["id"]): given[str(q["id"])] for q in questions}
            rows.append({"model": stage, "path": str(path), "backend": "answers file", "cached": len(questions),
                         "generated": 0, "model_path": str(path)})
            continue
        path = resolve_model(params, run_name, stage)
        hook = progress(stage) if progress else None
        info = generate_answers(params, stage, path, questions, Path(judge_dir) / "answers", progress=hook)
        answers[stage] = read_answers(Path(info["path"]))
        rows.append({**info, "model_path": path})
    return answers, pd.DataFrame(rows)


def rate(battles: pd.DataFrame, params, seed: int | None = None) -> dict:
    """Online Elo, Bradley-Terry Elo and its bootstrap CIs (by battle and by question), as params.judge.elo says."""
    e = params.judge.elo
    scale = EloScale(scale=e.scale, base=e.base, initial=e.initial)
    return rate_battles(battles, scale, e.bootstrap_rounds, e.k, e.anchor_model, e.anchor_value,
                        params.seed if seed is None else seed)
