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
