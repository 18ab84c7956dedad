"""On-policy pairs made before a round trains, by a generation job where the GPUs are, written to disk once.

    python -m med42_utils.dpo.onpolicy_job --size 8b --run-name demo --round round2 [--set KEY=VALUE ...]

The job loads the round's starting model and the scorer through the one inference loader
(med42_utils.inference: placed on the job's GPUs), samples and scores the pairs (dpo.onpolicy), and writes them to
<run>/dpo/<round>/onpolicy/ (an Arrow dataset, memory-mapped by every training rank) with pairs.json: what they
were made from and the rows kept and dropped. Where the starting model fits one GPU and the node has several (8B on
8 H100s), the sampling runs one replica per GPU: a worker process per GPU (CUDA_VISIBLE_DEVICES=i) samples every
N-th prompt, each prompt seeded by its own index, so the responses do not depend on how many GPUs made them; the
scorer then runs in the job's process once the workers have left the GPUs. The round's orchestration
(dpo.rounds.generate_where_gpus_are) runs this job before the round's training launch; training (dpo.train) only
reads them: it never samples.
Pairs made from other params or another starting model are made again. At tiny the notebook's kernel runs it.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from ..cli import job_parser, parse_override_args
from ..gpu_workers import run_on_gpus
from ..manifest import StageMissingError, input_fingerprints
from ..params import Params, load_params
from ..stages import round_spec
from .preference_data import DropReport
from .round_models import init_dir, resolve_init, round_dir

MODULE = "med42_utils.dpo.onpolicy_job"
PAIRS_DIR = "onpolicy"
META = "pairs.json"


def job_name(name: str) -> str:
    """The launcher's job name for a round's generation job (its SLURM script is launch_<job>.slurm)."""
    return f"onpolicy_{name}"


def is_onpolicy(params: Params, name: str) -> bool:
    op = params.dpo.onpolicy
    return op.enabled and name in op.rounds


def pairs_dir(params: Params, run_name: str, name: str) -> Path:
    return round_dir(params, run_name, name) / PAIRS_DIR


def pairs_key(params: Params, run_name: str, name: str) -> dict[str, Any]:
    """What a round's on-policy pairs are made from: the on-policy and data settings, the scorer's params, and
    the manifest of the model they sample (so a retrained SFT or earlier round makes them again)."""
    d = params.dpo
    key = {"onpolicy": d.onpolicy.model_dump(mode="json"), "datasets": round_spec(params, name).datasets,
           "data_source": d.data_source, "data_dir": d.data_dir, "max_samples_per_source": d.max_samples_per_source,
           "seed": d.seed, "dtype": params.model.torch_dtype,
           "inputs": input_fingerprints(round_dir(params, run_name, name), [init_dir(params, run_name, name)])}
    if d.onpolicy.scorer == "judge":
        key["judge"] = params.judge.model_dump(mode="json")
    return key


def pairs_ready(params: Params, run_name: str, name: str) -> bool:
    """True when the round's pairs are on disk and were made from what the round would make them from now."""
    meta = pairs_dir(params, run_name, name) / META
    try:
        return json.loads(meta.read_text())["key"] == pairs_key(params, run_name, name)
    except (OSError, ValueError, KeyError, StageMissingError):
        return False


def sampling_slots(params: Params, model_path: str) -> int:
    """Replicas the sampling runs on: the loader's placement on this node's GPUs (inference.plan_placement, fit's
    rule): every GPU when the model fits one (one_gpu), else 1 (a spread model takes the node)."""
    from ..inference import gpu_inventory, plan_placement
    from .onpolicy import generation_kv_tokens

    gpus, gib = gpu_inventory()
    if gpus < 2:
        return 1
    placed = plan_placement(params, model_path, gpus=gpus, gpu_mem_gib=gib, what="on-policy model",
                            kv_tokens=generation_kv_tokens(params))
    return placed.replicas if placed.mode == "one_gpu" else 1


def sample_on_gpus(params: Params, model_path: str, prompts: list, slots: int, work: Path) -> list[list[str]]:
    """dpo.onpolicy.k responses per prompt from `slots` worker processes, worker i on the node's GPU i sampling
    prompts i, i+slots, ... (gpu_workers.run_on_gpus: a failed worker stops the others and raises with its log)."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / "params.json").write_text(params.model_dump_json())
    (work / "prompts.json").write_text(json.dumps({"model": model_path, "prompts": [list(p) for p in prompts]}))
    print(f"on-policy sampling: {len(prompts)} prompts on {slots} GPU(s), one replica each", flush=True)
    run_on_gpus([(f"worker {i}", [sys.executable, "-m", MODULE, "--worker", str(work), "--shard", f"{i}/{slots}"],
                  work / f"worker-{i}.log") for i in range(slots)], slots, what="on-policy sampling")
    out: list[list[str] | None] = [None] * len(prompts)
    for i in range(slots):
        for j, resp in json.loads((work / f"responses-{i}.json").read_text()).items():
            out[int(j)] = resp
    missing = [j for j, r in enumerate(out) if r is None]
    if missing:
        raise RuntimeError(f"on-policy sampling: no responses for prompts {missing[:10]} (logs in {work})")
    shutil.rmtree(work, ignore_errors=True)
    return out


def sample_worker(work: Path, shard: str) -> None:
    """One GPU's share (`I/N`: prompts I, I+N, ...) of sample_on_gpus, with the job's params as it wrote them."""
    from .onpolicy import sample_responses

    i, n = (int(x) for x in shard.split("/"))
    params = Params.model_validate_json((work / "params.json").read_text())
    doc = json.loads((work / "prompts.json").read_text())
    idx = list(range(i, len(doc["prompts"]), n))
    responses = sample_responses(params, doc["model"], [doc["prompts"][j] for j in idx], indices=idx)
    tmp = work / f"responses-{i}.json.tmp"
    tmp.write_text(json.dumps({str(j): r for j, r in zip(idx, responses)}))
    tmp.rename(work / f"responses-{i}.json")


def make_pairs(params: Params, run_name: str, name: str, force: bool = False,
               slots: int | None = None) -> dict[str, Any]:
    """Sample, score and write the round's pairs (skipped when ready, unless force); returns pairs.json's fields.
    `slots`: sampling replicas (default sampling_slots: every GPU of the node for a model that fits one)."""
    from .onpolicy import onpolicy_prompts, sample_responses, score_pairs
    from .scorers import make_scorer

    if not is_onpolicy(params, name):
        raise ValueError(f"DPO {name} is not an on-policy round (dpo.onpolicy.enabled with {name} in "
                         f"dpo.onpolicy.rounds); its pairs come from its datasets")
    out = pairs_dir(params, run_name, name)
    if not force and pairs_ready(params, run_name, name):
        return json.loads((out / META).read_text())
    init_path = resolve_init(params, run_name, name)
    specs = round_spec(params, name).datasets
    base, report = onpolicy_prompts(params, specs)
    slots = sampling_slots(params, init_path) if slots is None else slots
    if slots > 1:
        responses = sample_on_gpus(params, init_path, list(base["prompt"]), slots, out.with_name(PAIRS_DIR + ".work"))
    else:
        responses = sample_responses(params, init_path, base["prompt"])
    ds, report = score_pairs(base, report, responses, make_scorer(params), specs)
    tmp = out.with_name(PAIRS_DIR + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    ds.save_to_disk(str(tmp))
    doc = {"key": pairs_key(params, run_name, name), "round": name, "sampled_from": init_path, "pairs": len(ds),
           "rows": report.as_dict()}
    (tmp / META).write_text(json.dumps(doc, indent=1))  # written last: a folder without it is not ready
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return doc


def read_pairs(params: Params, run_name: str, name: str):
    """The round's pairs as the generation job wrote them -> (Dataset, DropReport); every rank reads the same
    files. Missing or made from other inputs: an error naming the command that makes them."""
    import datasets

    out = pairs_dir(params, run_name, name)
    if not pairs_ready(params, run_name, name):
        why = "are missing" if not (out / META).is_file() else "were made from other params or another starting model"
        raise StageMissingError(
            f"DPO {name}'s on-policy pairs in {out} {why}. They are made before training, where the GPUs are: "
            f"run notebooks/04_dpo.ipynb (it runs the generation job first), or python -m {MODULE} "
            f"--size {params.size} --run-name {run_name} --round {name}")
    doc = json.loads((out / META).read_text())
    report = DropReport()
    report.kept.update(doc["rows"]["kept"])
    for src, reasons in doc["rows"]["dropped"].items():
        report.dropped[src].update(reasons)
    return datasets.load_from_disk(str(out)), report


def main(argv: list[str] | None = None) -> int:
    # not required by the parser: a sampling worker (--worker, started by sample_on_gpus) takes none of them
    ap = job_parser(__doc__.splitlines()[0], required=False)
    ap.add_argument("--round", help="round name from params, e.g. round2")
    ap.add_argument("--force", action="store_true", help="make the pairs again even if they are ready")
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)  # sample_on_gpus' worker: its work folder
    ap.add_argument("--shard", help=argparse.SUPPRESS)  # I/N: the worker's prompts
    a = ap.parse_args(argv)
    if a.worker is not None:
        sample_worker(a.worker, a.shard)
        return 0
    if not (a.size and a.run_name and a.round):
        ap.error("--size, --run-name and --round are required")
    params = load_params(a.size, parse_override_args(a.set))
    doc = make_pairs(params, a.run_name, a.round, force=a.force)
    print(f"{a.round}: {doc['pairs']} on-policy pairs in {pairs_dir(params, a.run_name, a.round)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
