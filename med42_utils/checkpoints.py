"""Checkpoints of SFT and every DPO round: saved every `save_steps`, the last `save_total_limit` kept, and picked
up again on their own when a stage is started after an interruption (TIMEOUT, preemption, requeue, a crash, a re-run).

    ckpt = resume_point(ckpt_dir, key)         # last complete checkpoint made for this `key`, or None
    trainer.train(resume_from_checkpoint=ckpt)  # transformers restores weights, optimizer, scheduler, RNG, data order

`key` says what the checkpoints were made from (the params that shape training and the upstream manifests); a folder
made from anything else is discarded with a message instead of being continued. On SLURM the job script asks for
SIGUSR1 `stop_signal_seconds` before the time limit (`#SBATCH --signal`); StopOnSignal then saves a checkpoint at the
end of the current step on every rank, stops training, and leaves a marker (MED42_REQUEUE_FILE) that makes the
script requeue the job, which resumes from that checkpoint. See docs/resume.md.

    python -m med42_utils.checkpoints --size 70b --run-name main            # list checkpoints and their disk
    python -m med42_utils.checkpoints --size 70b --run-name main --discard  # delete them: the next run starts over
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

from .estimates import lora_fraction, model_shape
from .params import Params, load_params
from .paths import shown
from .stages import checkpoint_dir, round_names

RESUME_KEY = "resume_key.json"
STATE = "trainer_state.json"  # transformers writes it last: a checkpoint without it is incomplete
REQUEUE_FILE_ENV = "MED42_REQUEUE_FILE"
STOP_FILE_ENV = "MED42_STOP_FILE"
SLOW_STEP_ENV = "MED42_TEST_SLOW_STEP_SECONDS"
# fields that change how often checkpoints are written or logs are kept, not what training computes
_NOT_IN_KEY = {"save_steps", "save_total_limit", "stop_signal_seconds", "logging_steps", "speed"}


def resume_key(params: Params, stage: str, inputs: dict[str, str], **extra: Any) -> dict[str, Any]:
    """What a stage's checkpoints were made from: its training params (without the checkpoint and logging
    knobs), the upstream manifests' fingerprints and `extra` (a DPO round's name and datasets). `stage` is
    'sft' or 'dpo'."""
    dump = params.model_dump(mode="json")
    section = {k: v for k, v in dump[stage].items() if k not in _NOT_IN_KEY}
    if stage == "dpo":  # one round's checkpoints do not depend on the other rounds' settings
        section.pop("rounds", None)
    return {"size": params.size, "model": dump["model"], "seed": dump["seed"], stage: section,
            "packing": dump["packing"] if stage == "sft" else None, "inputs": inputs, **extra}


def _complete(ckpt: Path) -> bool:
    return (ckpt / STATE).is_file() and not (ckpt / "checkpoint-is-incomplete.txt").exists()


def checkpoints(ckpt_dir: Path) -> list[Path]:
    """checkpoint-N folders in `ckpt_dir`, oldest first (the names transformers gives them; a copy such as
    checkpoint-5-old or checkpoint-old-5 is not one of them, neither continued nor deleted)."""
    if not Path(ckpt_dir).is_dir():
        return []
    found = [p for p in Path(ckpt_dir).glob("checkpoint-*")
             if p.is_dir() and re.fullmatch(r"checkpoint-[0-9]+", p.name)]
    return sorted(found, key=lambda p: int(p.name.removeprefix("checkpoint-")))


def _remove(ckpt: Path, why: str) -> None:
    """Delete a checkpoint that must not be continued; one that stays (a link, no permission) stops the run, since
    the next start would take it for a checkpoint of the key recorded now."""
    try:
        if ckpt.is_symlink():
            ckpt.unlink()
        else:
            shutil.rmtree(ckpt)
    except OSError as e:
        raise RuntimeError(f"{ckpt} ({why}) could not be deleted ({e.strerror or e}); delete it by hand or "
                           f"train into another run folder, then start again") from None


def resume_point(ckpt_dir: Path, key: dict[str, Any], main_process: bool = True) -> str | None:
    """The last complete checkpoint in `ckpt_dir` made for `key`, or None (then training starts at step 0).

    Checkpoints made for another key (other params, another upstream model or data) are deleted with a message;
    an incomplete last checkpoint (killed while saving) is deleted and the one before it is used. The main process
    writes `key` so that the checkpoints written from now on are known to belong to it."""
    ckpt_dir = Path(ckpt_dir)
    found = checkpoints(ckpt_dir)
    key_file = ckpt_dir / RESUME_KEY
    recorded = json.loads(key_file.read_text()) if key_file.is_file() else None
    if found and recorded != key:
        why = "no record of what they were made from" if recorded is None else "made from other params or inputs"
        if main_process:
            print(f"discarding the checkpoints in {shown(ckpt_dir)} ({why}); training starts at step 0", flush=True)
            for p in found:
                _remove(p, why)
        found = []
    while found and not _complete(found[-1]):
        if main_process:
            print(f"{found[-1].name} is incomplete (the job ended while saving it): not used", flush=True)
            _remove(found[-1], "incomplete")
        found.pop()
    if main_process:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        key_file.write_text(json.dumps(key, indent=1, sort_keys=True))
    if found:
        step = json.loads((found[-1] / STATE).read_text()).get("global_step")
        if main_process:
            print(f"resuming from {found[-1]} (step {step})", flush=True)
        return str(found[-1])
    return None


def resume_for(trainer, ckpt_dir: Path, key: dict[str, Any]) -> str | None:
    """resume_point for every process of a trainer: the main process checks (and cleans) the folder first, the
    others then read the same answer."""
    acc = trainer.accelerator
    found = resume_point(ckpt_dir, key) if acc.is_main_process else None
    acc.wait_for_everyone()
    if not acc.is_main_process:
        found = resume_point(ckpt_dir, key, main_process=False)
    return found


def disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def stop_on_signal_callback(signum: int = signal.SIGUSR1, requeue_file: str | None = None,
                            stop_file: str | None = None):
    """A TrainerCallback: when `stop_file` (default: $MED42_STOP_FILE, which the SLURM script creates on SLURM's
    warning before the time limit) exists, or this process gets `signum`, save a checkpoint at the end of the
    current step and stop training; every rank stops at the same step (the flag is all-reduced). When training
    has advanced past where it started, it writes `requeue_file` (default: $MED42_REQUEUE_FILE) so the SLURM
    script requeues the job. The previous signal handler is restored when training ends."""
    from transformers import TrainerCallback

    requeue_file = requeue_file or os.environ.get(REQUEUE_FILE_ENV)
    stop_file = stop_file or os.environ.get(STOP_FILE_ENV)

    class StopOnSignal(TrainerCallback):
        def __init__(self):
            self.requested = False
            self.stopped_at: int | None = None
            self.start_step = 0
            self._previous = None

        def _handler(self, signum, frame):
            self.requested = True

        def on_train_begin(self, args, state, control, **kw):
            self.start_step = state.global_step  # after a resume: the checkpoint's step
            try:
                self._previous = signal.signal(signum, self._handler)
            except ValueError:  # not the main thread (e.g. a notebook running training in a thread)
                self._previous = None

        def _agreed(self, args) -> bool:
            import torch
            import torch.distributed as dist

            requested = self.requested or bool(stop_file and os.path.exists(stop_file))
            if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
                return requested
            flag = torch.tensor([1.0 if requested else 0.0], device=args.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            return bool(flag.item())

        def on_step_end(self, args, state, control, **kw):
            if self._agreed(args):
                control.should_save = True
                control.should_training_stop = True
                self.stopped_at = state.global_step
                if state.is_world_process_zero:
                    print(f"asked to stop ({signal.Signals(signum).name} or {stop_file}) at step {state.global_step}: "
                          "saving a checkpoint and stopping; the next start resumes from it", flush=True)
            return control

        def on_train_end(self, args, state, control, **kw):
            if self._previous is not None:
                signal.signal(signum, self._previous)
            if (self.stopped_at is not None and self.stopped_at > self.start_step and requeue_file
                    and state.is_world_process_zero):
                Path(requeue_file).parent.mkdir(parents=True, exist_ok=True)
                Path(requeue_file).write_text(json.dumps({"step": self.stopped_at, "time": time.time()}))

    return StopOnSignal()


def slow_steps_for_tests():
    """TEST ONLY, off by default: with $MED42_TEST_SLOW_STEP_SECONDS set, every training step sleeps that long, so
    that a tiny run outlasts SLURM's smallest --time (one minute) in the time-limit test. None when unset."""
    seconds = float(os.environ.get(SLOW_STEP_ENV) or 0)
    if seconds <= 0:
        return None
    from transformers import TrainerCallback

    class SlowStepsForTests(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            time.sleep(seconds)

    return SlowStepsForTests()


def training_callbacks() -> list:
    """The callbacks every training stage adds: stop (and checkpoint) on SLURM's signal, and the test slow-down."""
    return [c for c in (stop_on_signal_callback(), slow_steps_for_tests()) if c is not None]


def checkpoint_bytes(params: Params, stage: str) -> float:
    """Disk of one checkpoint with optimizer state: fp32 trainable weights + optimizer moments (AdamW 2, RMSprop 1)
    for full training; LoRA saves the adapters and their optimizer state only."""
    section = getattr(params, stage)
    shape = model_shape(params)
    moments = 1 if section.optim == "rmsprop" else 2
    trainable = shape.parameters * (lora_fraction(params, shape, section.lora) if section.method == "lora" else 1)
    return trainable * 4 * (1 + moments)


def size_text(b: float) -> str:
    """Bytes as the checkpoint lines write them: '2.68 TB', '141.11 GB', '503.32 MB'."""
    for unit, f in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if b >= f:
            return f"{b / f:,.2f} {unit}"
    return f"{b / 1e3:,.1f} kB"


def plan_note(params: Params, stage: str, hours: float | None = None, steps: int | None = None) -> str:
    """The launch plan's line on checkpoints: interval (steps, and hours where the plan estimates the wall time),
    retention and the disk it needs, the SLURM signal and what happens on it."""
    s = getattr(params, stage)
    each = checkpoint_bytes(params, stage)
    every = f"every {s.save_steps} steps" + (f" ({s.save_steps * s.batch_size:,} pairs)" if stage == "dpo" else "")
    if hours and steps:
        every += f", about {hours / steps * s.save_steps * 60:,.0f} min at the estimated pace"
    return (f"checkpoints: {every}, the last {s.save_total_limit} kept: about {size_text(each)} each, "
            f"{size_text(each * s.save_total_limit)} on disk at most (plus one being written); a re-run, requeue or "
            f"restart resumes from the last one; on SLURM, SIGUSR1 {s.stop_signal_seconds} s before the time limit "
            f"saves one and requeues the job (docs/resume.md)")


def stage_checkpoint_dirs(params: Params, run_name: str) -> dict[str, Path]:
    """{'sft': .../sft/checkpoints, 'dpo_round1': .../dpo/round1/trainer, ...}"""
    return {s: checkpoint_dir(params, run_name, s) for s in ("sft", *(f"dpo_{n}" for n in round_names(params)))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="List or discard the training checkpoints of a run (docs/resume.md).")
    ap.add_argument("--size", required=True)
    ap.add_argument("--run-name", required=True)
    ap.add_argument("--stage", action="append", default=None,
                    help="sft or dpo_<round> (repeatable; default: every training stage)")
    ap.add_argument("--discard", action="store_true", help="delete them: the next run of the stage starts at step 0")
    a = ap.parse_args(argv)
    params = load_params(a.size)
    dirs = stage_checkpoint_dirs(params, a.run_name)
    unknown = [s for s in a.stage or [] if s not in dirs]
    if unknown:
        ap.error(f"unknown stage(s) {unknown}; stages: {', '.join(dirs)}")
    for name in a.stage or list(dirs):
        d = dirs[name]
        found = checkpoints(d)
        if a.discard:
            freed = disk_bytes(d)  # 0 where there is no folder
            if d.is_dir():
                shutil.rmtree(d)
            print(f"{name}: discarded {d} ({size_text(freed)})" if freed else f"{name}: no checkpoints in {d}")
        else:
            listed = ", ".join(p.name for p in found) or "none"
            print(f"{name}: {d}: {listed}" + (f" ({size_text(disk_bytes(d))})" if found else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
