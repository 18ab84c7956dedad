"""Training logs of SFT and every DPO round: where they go, what the trainer prints, how 03/04 read them back.

- `report_to` (params `training_logs.report_to`): TensorBoard event files in `<stage>/tensorboard/` by default,
  Weights & Biases one setting away, or none. The files are written by the training process (in-process at
  tiny, a SLURM/accelerate job at GPU sizes) and read back by the notebook from the shared filesystem.
- `quiet_trainer`: the trainer's raw log dicts are replaced by a few compact progress lines per run.
- `read_scalars`: the curves back from the event files (TensorBoard's own EventAccumulator).
"""
from __future__ import annotations

import math
import os
import shutil
import time
from pathlib import Path

TENSORBOARD = "tensorboard"
LINES_PER_RUN = 4  # progress lines printed per training run (plus one at the start and one at the end)


def log_dir(stage_dir: str | Path) -> Path:
    """Where a stage's TensorBoard event files go: <stage dir>/tensorboard/ (sft/ or dpo/<round>/)."""
    return Path(stage_dir) / TENSORBOARD


def report_to(params) -> list[str]:
    """TrainingArguments.report_to from params; W&B must be installed (a clear error says how, before training)."""
    sink = params.training_logs.report_to
    if sink == "wandb":
        try:
            import wandb  # noqa: F401
        except ImportError:
            raise ImportError(
                "training_logs.report_to is 'wandb' but wandb is not installed: `pip install wandb`, then `wandb login` "
                "or WANDB_API_KEY in the environment (never in params); or set training_logs.report_to: tensorboard"
            ) from None
    return [] if sink == "none" else [sink]


def trainer_kwargs(params, run_name: str, stage: str) -> dict:
    """The TrainingArguments fields of the logs: the sink and a run name W&B shows ("<size>/<run>/<stage>")."""
    return {"report_to": report_to(params), "run_name": f"{params.size}/{run_name}/{stage}"}


def quiet_trainer(trainer, params, stage_dir: str | Path, label: str, fresh: bool = True):
    """Replace the trainer's printed log dicts and bars by compact progress lines; point TensorBoard at
    <stage dir>/tensorboard/ (emptied first when `fresh`, so a retrained stage shows only its own curves;
    a resumed run appends); name the W&B project. Returns the trainer."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from transformers.utils.notebook import NotebookProgressCallback

    for cb in (PrinterCallback, ProgressCallback, NotebookProgressCallback):
        trainer.remove_callback(cb)
    tb = log_dir(stage_dir)
    for cb in trainer.callback_handler.callbacks:
        if type(cb).__name__ == "TensorBoardCallback":
            if fresh and trainer.is_world_process_zero() and tb.exists():
                shutil.rmtree(tb)
            cb.logging_dir = str(tb)
    if params.training_logs.report_to == "wandb":
        os.environ.setdefault("WANDB_PROJECT", params.training_logs.wandb_project)
    trainer.add_callback(progress_lines(label, params.training_logs.report_to, tb))
    return trainer


def _fmt(key: str, v: float) -> str:
    if key == "learning_rate":
        return f"lr {v:.2e}"
    name = {"rewards/margins": "margin", "rewards/accuracies": "acc", "grad_norm": "grad norm"}.get(key, key)
    return f"{name} {v:.3f}" if abs(v) < 100 else f"{name} {v:.0f}"


def progress_lines(label: str, sink: str, tb: Path):
    """A TrainerCallback printing LINES_PER_RUN lines per run: step / total, the means of the metrics logged
    since the previous line (loss, margin and accuracy for DPO, grad norm, the current learning rate), elapsed."""
    from transformers import TrainerCallback

    keys = ("loss", "rewards/margins", "rewards/accuracies", "grad_norm")

    class ProgressLines(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            self.t0, self.buf, self.next = time.time(), [], 1
            if state.is_world_process_zero:
                from .paths import shown

                where = {"tensorboard": f"TensorBoard event files in {shown(tb)}", "wandb": "Weights & Biases",
                         "none": "no log sink (training_logs.report_to: none)"}[sink]
                print(f"[{label}] {state.max_steps} steps; metrics -> {where}", flush=True)

        def on_log(self, args, state, control, logs=None, **kw):
            if not (logs and "loss" in logs) or not state.is_world_process_zero:
                return
            self.buf.append(logs)
            if state.global_step >= self.next * state.max_steps / LINES_PER_RUN or state.global_step == state.max_steps:
                means = [_fmt(k, sum(b[k] for b in self.buf) / len(self.buf)) for k in keys if k in logs]
                print(f"[{label}] step {state.global_step:>4}/{state.max_steps}  " + "  ".join(means)
                      + f"  {_fmt('learning_rate', logs.get('learning_rate', 0.0))}  ({time.time() - self.t0:.0f} s;"
                      f" means of {len(self.buf)} logged step{'s' * (len(self.buf) > 1)})", flush=True)
                self.buf = []
                self.next = math.floor(state.global_step * LINES_PER_RUN / state.max_steps) + 1

        def on_train_end(self, args, state, control, **kw):
            if state.is_world_process_zero:
                print(f"[{label}] done: {state.global_step} steps in {time.time() - self.t0:.1f} s", flush=True)

    return ProgressLines()


def has_events(stage_dir: str | Path) -> bool:
    d = log_dir(stage_dir)
    return d.is_dir() and any(d.rglob("events.out.tfevents.*"))


def read_scalars(stage_dir: str | Path):
    """Every scalar the trainer wrote to <stage dir>/tensorboard/ -> DataFrame indexed by step, one column per
    metric ('loss', 'learning_rate', 'grad_norm', 'rewards/margins', ...; the 'train/' prefix dropped).
    A resumed run appends to the same folder: for a step written twice the later value wins."""
    import pandas as pd
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    d = log_dir(stage_dir)
    if not has_events(stage_dir):
        raise FileNotFoundError(
            f"no TensorBoard event files in {d}: the stage ran with training_logs.report_to other than "
            "'tensorboard', or has not trained yet")
    cols: dict[str, dict[int, float]] = {}
    for f in sorted(d.rglob("events.out.tfevents.*"), key=lambda p: p.stat().st_mtime):
        acc = EventAccumulator(str(f), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            if not tag.startswith("train/"):
                continue
            col = cols.setdefault(tag.removeprefix("train/"), {})
            for ev in acc.Scalars(tag):
                col[ev.step] = ev.value
    df = pd.DataFrame(cols).sort_index()
    df.index.name = "step"
    # the end-of-training summary (train_loss, train_runtime, ...) is logged at the last step: not a curve
    return df.drop(columns=[c for c in df if c.startswith("train_") or c in ("total_flos",)], errors="ignore")


def curves(stage_dir: str | Path, log_history: list[dict]):
    """(DataFrame by step, source): the event files when there are any, else the trainer's log history
    (training_logs.report_to wandb or none), so 03/04 plot the same curves either way."""
    import pandas as pd

    if has_events(stage_dir):
        from .paths import shown

        return read_scalars(stage_dir), f"TensorBoard event files in {shown(log_dir(stage_dir))}"
    rows = [h for h in log_history if "loss" in h]
    df = pd.DataFrame(rows).set_index("step").drop(columns=["epoch"], errors="ignore") if rows else pd.DataFrame()
    return df, "the trainer's log history (no TensorBoard event files: training_logs.report_to is not tensorboard)"


def spikes(df, factor: float = 10.0):
    """Steps whose gradient norm is more than `factor` x the run's median gradient norm (the loss jumps with it)."""
    if df.empty or "grad_norm" not in df:
        return df.iloc[0:0]
    return df[df["grad_norm"] > factor * df["grad_norm"].median()]
