"""Run the numbered notebooks headlessly with papermill: `python -m med42_utils.runner --size tiny`.

A notebook whose stage is done (manifest written with the same params, upstream manifests unchanged)
is not executed again: the runner says "skipped: done, inputs unchanged" and keeps the executed copy
of its last real run. Parameters (e.g. force=True) or --force always execute it.
"""
from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

from .paths import repo_root, run_dir
from .quiet import encrypted_kernel_manager

NOTEBOOK = re.compile(r"^(\d\d)_[a-z0-9_]+\.ipynb$")


def notebooks(folder: Path | None = None) -> list[Path]:
    """The course notebooks, in order (NN_name.ipynb in notebooks/)."""
    folder = folder or repo_root() / "notebooks"
    return sorted(p for p in folder.glob("*.ipynb") if NOTEBOOK.match(p.name))


def stage_checks(params, run_name: str, stem: str) -> list[tuple[Path, list[Path] | None]]:
    """(stage folder, upstream folders it reads) for every stage a course notebook finishes; [] = always run."""
    from .models import model_stage_dirs
    from .stages import BY_NOTEBOOK, init_stage, round_names, stage_dir

    if stem not in BY_NOTEBOOK or stem == "00_setup":  # 00 reports this machine: cheap, and always current
        return []
    root = run_dir(params.size, run_name)
    if stem == "01_data_curation":
        return [(root / "data", None)]
    if stem == "02_packing":
        return [(root / "packing", [root / "data"])]
    if stem == "03_sft":
        return [(root / "sft", [root / "packing"])]
    if stem == "04_dpo":
        rounds = [stage_dir(params, run_name, f"dpo_{n}") for n in round_names(params)]
        inits = [stage_dir(params, run_name, init_stage(params, n)) for n in round_names(params)]
        return [(d, [i]) for d, i in zip(rounds, inits)] + [
            (root / "dpo", rounds)]
    if stem == "05_benchmarks":
        return [(root / "eval", model_stage_dirs(params, run_name, params.eval.models))]
    return [(root / "judge", model_stage_dirs(params, run_name, params.judge.models))]


def not_done_reason(nb: Path, size: str, run_name: str) -> str | None:
    """Why `nb` must execute with its default parameters, or None when every stage it finishes is done."""
    from .manifest import not_done_reason as stage_reason
    from .params import load_params

    params = load_params(size)
    checks = stage_checks(params, run_name, nb.stem)
    if not checks:
        return "not a skippable stage"
    for folder, inputs in checks:
        why = stage_reason(folder, params, inputs)
        if why:
            return f"{folder.name}: {why}"
    return None


def run_notebook(nb: Path, size: str, run_name: str, parameters: dict | None = None, timeout: int = 1800) -> Path:
    """Execute one notebook into outputs/<size>/<run_name>/<name>.ipynb and return that path."""
    import papermill as pm

    out = run_dir(size, run_name) / nb.name
    out.parent.mkdir(parents=True, exist_ok=True)
    pm.execute_notebook(
        str(nb),
        str(out),
        parameters={"size": size, "run_name": run_name, **(parameters or {})},
        cwd=str(nb.parent),
        kernel_name="python3",
        progress_bar=False,
        execution_timeout=timeout,
        kernel_manager_class=encrypted_kernel_manager(),  # no "running over TCP without encryption" warning
    )
    return out


def run_all(
    size: str, run_name: str, only: list[str] | None = None, parameters: dict | None = None, folder: Path | None = None,
    force: bool = False,
) -> list[Path]:
    """Run every notebook in order; stop at the first failure, naming it (its partial copy is kept).

    Done-ness is decided before each notebook (after the ones before it ran): a done stage is skipped
    unless `force` or `parameters` are given; `force` passes force=True to notebooks that take it.
    """
    import papermill as pm

    todo = [nb for nb in notebooks(folder) if not only or nb.name[:2] in only or nb.stem in only]
    if not todo:
        raise RuntimeError(f"no notebooks matched {only!r} in {folder or repo_root() / 'notebooks'}")
    done = []
    for i, nb in enumerate(todo, 1):
        t0 = time.time()
        print(f"[{i}/{len(todo)}] {nb.name} (size={size}, run_name={run_name}) ...", flush=True)
        why = "forced" if force else "parameters given" if parameters else not_done_reason(nb, size, run_name)
        if why is None:
            kept = run_dir(size, run_name) / nb.name
            print(f"[{i}/{len(todo)}] {nb.name} skipped: done, inputs unchanged (last executed copy: "
                  f"{kept if kept.is_file() else 'none here; the stage ran elsewhere'})", flush=True)
            done.append(kept)
            continue
        if "changed" in why or "now reads" in why:  # a finished stage runs again: say why
            print(f"[{i}/{len(todo)}] {nb.name} runs again: {why}", flush=True)
        extra = {**(parameters or {}), **({"force": True} if force and _takes(nb, "force") else {})}
        try:
            done.append(run_notebook(nb, size, run_name, extra))
        except pm.PapermillExecutionError as e:
            partial = run_dir(size, run_name) / nb.name
            raise RuntimeError(
                f"notebook {nb.name} failed in cell {e.exec_count}: {e.ename}: {e.evalue}\n"
                f"partly executed copy: {partial}"
            ) from None
        print(f"[{i}/{len(todo)}] {nb.name} done in {time.time() - t0:.0f}s", flush=True)
    return done


def _takes(nb: Path, name: str) -> bool:
    """Whether the notebook's parameters cell declares `name`."""
    import papermill as pm

    return name in pm.inspect_notebook(str(nb))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", default="tiny")
    ap.add_argument("--run-name", default="demo")
    ap.add_argument("--only", nargs="*", help="notebook numbers or stems to run, e.g. 00 01")
    ap.add_argument("--force", action="store_true", help="execute every notebook, passing force=True where it is a parameter")
    args = ap.parse_args(argv)
    try:
        outs = run_all(args.size, args.run_name, args.only, force=args.force)
    except (RuntimeError, ValueError) as e:
        print(f"FAILED: {e}", file=sys.stderr)
        return 1
    print(f"all {len(outs)} notebooks done; executed copies in {run_dir(args.size, args.run_name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
