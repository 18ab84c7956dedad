"""What 06_elo_judging runs, in a few calls: answer with every model, judge every pair, rate."""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from ..models import resolve_model
from .answers import generate_answers, read_answers
from .elo import EloScale, bootstrap_bt, bt_elo, leaderboard, online_elo

JUDGMENTS = "judgments.jsonl"


def reset(judge_dir: Path) -> None:
    """force=True: forget cached answers and judgments of this run."""
    shutil.rmtree(Path(judge_dir) / "answers", ignore_errors=True)
    (Path(judge_dir) / JUDGMENTS).unlink(missing_ok=True)


def answer_all(params, run_name: str, questions: list[dict], judge_dir: Path) -> tuple[dict, pd.DataFrame]:
    """Answers of every params.judge.models stage: ({model: {question_id: text}}, one row of counts per model)."""
    rows, answers = [], {}
    for stage in params.judge.models:
        path = resolve_model(params, run_name, stage)
        info = generate_answers(params, stage, path, questions, Path(judge_dir) / "answers")
        answers[stage] = read_answers(Path(info["path"]))
        rows.append({**info, "model_path": path})
    return answers, pd.DataFrame(rows)


def rate(battles: pd.DataFrame, params, seed: int | None = None) -> dict:
    """Online Elo, Bradley-Terry Elo and its bootstrap CIs (by battle and by question), as params.judge.elo says."""
    e = params.judge.elo
    scale = EloScale(scale=e.scale, base=e.base, initial=e.initial)
    seed = params.seed if seed is None else seed
    point = bt_elo(battles, scale, e.anchor_model, e.anchor_value)
    boots = {kind: bootstrap_bt(battles, e.bootstrap_rounds, kind, scale, e.anchor_model, e.anchor_value, seed=seed)
             for kind in ("battle", "question")}
    board = leaderboard(point, boots, battles)
    board.insert(1, "online_elo", online_elo(battles, e.k, scale).reindex(board.index))
    return {"bt": point, "bootstrap": boots, "leaderboard": board, "scale": scale}


def require_gpu(params, dry_run: bool = False) -> None:
    """8b/70b answers and judge need CUDA; fail fast with the fix on a CPU box (tiny and dry runs pass)."""
    if params.model.base == "tiny" or dry_run:
        return
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError(f"06_elo_judging at size {params.size} generates answers with {params.size} models and "
                           "needs CUDA GPUs, which this machine lacks; run size 'tiny' here, or dry_run=True to see the plan")
