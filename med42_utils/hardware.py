"""What this machine is, what each size needs, and whether this machine can run it."""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
from dataclasses import dataclass

from .manifest import library_versions
from .params import Params
from .params.base import Hardware


class HardwareError(RuntimeError):
    """A size needs hardware this machine does not have."""


def environment_report() -> dict:
    """Versions, CPU, memory, CUDA devices of this machine, and SLURM (allocation nodes, sbatch on PATH)."""
    import torch

    gpus = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            prop = torch.cuda.get_device_properties(i)
            gpus.append({"name": prop.name, "memory_gib": round(prop.total_memory / 2**30, 1)})
    mem_gib = None
    if hasattr(os, "sysconf") and "SC_PHYS_PAGES" in os.sysconf_names:
        mem_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    return {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "memory_gib": mem_gib,
        "cuda": torch.cuda.is_available(),
        "cuda_version": torch.version.cuda,
        "gpus": gpus,
        **slurm_report(),
        "versions": library_versions(),
    }


_GPU_WORDS = {"h100": "H100 GPUs", "cuda": "CUDA GPU(s) of any kind"}


def slurm_report() -> dict:
    """Whether this process runs inside a SLURM allocation (its node count) and whether sbatch can submit from
    here (on PATH, and a controller answers); `slurm_note` says why an installed sbatch cannot."""
    from .slurm import allocation_nodes

    usable, note = sbatch_usable()
    sinfo = _sinfo_text() if usable else None
    return {"slurm_nodes": allocation_nodes(), "sbatch": usable, **({"slurm_note": note} if note else {}),
            **({"sinfo": sinfo} if sinfo else {})}


def _sinfo_text() -> str | None:
    """The partitions as `sinfo -h -o SINFO_FORMAT` prints them (what can_run checks a request against)."""
    from .slurm_site import SINFO_FORMAT

    try:
        r = subprocess.run(["sinfo", "-h", "-o", SINFO_FORMAT], capture_output=True, text=True, timeout=60)
    except (subprocess.TimeoutExpired, FileNotFoundError):
        return None
    return r.stdout.strip() if r.returncode == 0 and r.stdout.strip() else None


def sbatch_usable() -> tuple[bool, str]:
    """sbatch on PATH and `scontrol ping` answering: SLURM's client tools installed without a reachable cluster
    (a laptop, a CI box) do not make a login node, and a job submitted there could never run."""
    if shutil.which("sbatch") is None:
        return False, ""
    if shutil.which("scontrol") is None:
        return True, ""  # cannot ask; sbatch itself will say
    try:
        r = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return False, "sbatch is installed but `scontrol ping` did not answer within 60 s"
    if r.returncode != 0:
        last = (r.stderr.strip() or r.stdout.strip()).splitlines()[-1:] or ["no answer"]
        return False, f"sbatch is installed but no SLURM controller answers (`scontrol ping`: {last[0]})"
    return True, ""


def placement(hardware: Hardware, report: dict | None = None) -> tuple[str, str]:
    """Where a stage placed on `hardware` runs from this machine, and why:

    - "inprocess": tiny, in this Python process;
    - "srun": inside a SLURM allocation with enough nodes, one task per node, blocking;
    - "local": `accelerate launch` on this node (it has the GPUs, or the stage runs on CPU);
    - "sbatch": a login node (sbatch on PATH): submit the SLURM script and wait for it;
    - "refuse": none of these; the reason says what to do.
    """
    report = report or environment_report()
    if hardware.launcher == "inprocess":
        return "inprocess", "runs on CPU" if hardware.accelerator == "cpu" else "in this Python process"
    need = f"{hardware.nodes} node(s) x {hardware.gpus_per_node} {_GPU_WORDS.get(hardware.accelerator, hardware.accelerator)}"
    alloc = report.get("slurm_nodes")
    if alloc is not None and alloc >= hardware.nodes:
        return "srun", f"inside a SLURM allocation of {alloc} node(s): srun one launch per node ({need})"
    n = len(report.get("gpus", []))
    if hardware.nodes == 1 and (hardware.accelerator == "cpu" or n >= hardware.gpus_per_node):
        return "local", f"{n} GPU(s) found" if hardware.accelerator != "cpu" else "runs on CPU"
    if report.get("sbatch") and alloc is None:
        return "sbatch", f"sbatch found: submits a SLURM job ({need}) and waits for it"
    if alloc is not None:
        return "refuse", (f"needs {need} and this SLURM allocation has {alloc} node(s); "
                          f"allocate with salloc --nodes={hardware.nodes}, or run the notebook on a login node")
    if not report.get("cuda"):
        note = f" ({report['slurm_note']})" if report.get("slurm_note") else ""
        return "refuse", (f"needs {need} and this machine has no CUDA device and no SLURM (sbatch){note}; "
                          "use size=tiny here, or run on a GPU cluster (dry_run=True renders the plan)")
    if hardware.nodes == 1:
        return "refuse", f"needs {hardware.gpus_per_node} GPUs on this node and finds {n}"
    return "refuse", (f"multi-node ({hardware.nodes} nodes) needs SLURM: run the notebook on a login node "
                      f"(sbatch) or inside an allocation (salloc --nodes={hardware.nodes}); this node has {n} GPU(s)")


def can_run(hardware: Hardware, report: dict | None = None, slurm_options=None, stage: str = "sft") -> tuple[bool, str]:
    """Whether a stage placed on `hardware` can start from this machine (run here, srun or sbatch), and why not.
    Submitted with sbatch, the request must also fit a partition of the cluster (the report's `sinfo`; params'
    `slurm_options` for the stage choose the partition): a 6-node plan on a 1-node partition is a no."""
    report = report or environment_report()
    where, why = placement(hardware, report)
    if where == "sbatch" and report.get("sinfo"):
        from .params.slurm import SlurmOptions
        from .slurm_site import fit_problems, parse_sinfo, site_request

        parts = parse_sinfo(report["sinfo"])
        site = site_request(slurm_options or SlurmOptions(), hardware, parts)
        problems = fit_problems(site, hardware, parts, stage)
        if problems:
            return False, f"sbatch found, but the request does not fit this cluster: {'; '.join(problems)}"
    return where != "refuse", why


def require_hardware(hardware: Hardware, what: str) -> str:
    """Fail fast, with the fix, when `what` cannot start from this machine; else return the placement."""
    where, why = placement(hardware)
    if where == "refuse":
        raise HardwareError(f"{what} cannot run on this machine: {why}")
    return where


@dataclass
class StagePlan:
    stage: str
    nodes: int
    gpus_per_node: int
    accelerator: str
    launcher: str
    batch: str
    steps: str
    tokens: str


def size_plan(params: Params) -> list[StagePlan]:
    """The training plan of a size: hardware, batch, steps and tokens for SFT and DPO."""
    s, d = params.sft, params.dpo
    sh, dh = s.hardware, d.hardware
    return [
        StagePlan(
            "sft", sh.nodes, sh.gpus_per_node, sh.accelerator, sh.launcher,
            f"{params.sft_tokens_per_step:,} tokens/step ({s.micro_batch_size} x {s.gradient_accumulation_steps} "
            f"accum x {sh.world_size} procs x {params.packing.max_length})",
            # max_steps decides (the trainer ignores num_train_epochs then); passes depend on the data: 03 prints them
            f"{s.max_steps:,} steps (max_steps; 03 prints the passes over the data)",
            f"{params.sft_total_tokens:,} tokens",
        ),
        StagePlan(
            "dpo", dh.nodes, dh.gpus_per_node, dh.accelerator, dh.launcher,
            f"{params.dpo_batch_size} pairs/step ({d.micro_batch_size} x {d.gradient_accumulation_steps} accum x "
            f"{dh.world_size} procs), max length {d.max_length}",
            f"{len(d.rounds)} rounds x {d.num_train_epochs} epoch{'s' if d.num_train_epochs != 1 else ''}",
            # an upper bound: each pair is a chosen and a rejected sequence of at most max_length tokens
            f"up to {2 * params.dpo_batch_size * d.max_length:,} tokens/step (chosen + rejected, "
            f"{params.dpo_batch_size} pairs x {d.max_length})",
        ),
    ]


def runnable_sizes(report: dict | None = None) -> dict[str, dict[str, str]]:
    """For every params size: can this machine run its SFT and DPO stages, and why (not)."""
    from .params import load_params, valid_sizes

    report = report or environment_report()
    out = {}
    for size in valid_sizes():
        p = load_params(size)
        out[size] = {}
        for stage, hw in (("sft", p.sft.hardware), ("dpo", p.dpo.hardware)):
            ok, why = can_run(hw, report, p.slurm.for_stage(stage), stage)
            out[size][stage] = ("yes: " if ok else "no: ") + why
    return out


def job_hardware(params: Params) -> Hardware:
    """Where eval (05) and judging (06) jobs run: one node with the SFT stage's GPUs per node, a single
    Python process that spreads the model over them; tiny stays in-process on CPU."""
    hw = params.sft.hardware
    if hw.accelerator == "cpu":
        return Hardware(nodes=1, gpus_per_node=1, accelerator="cpu", launcher="inprocess")
    return Hardware(nodes=1, gpus_per_node=hw.gpus_per_node, accelerator=hw.accelerator, launcher="accelerate",
                    accelerate_config=hw.accelerate_config)


def in_kernel(params: Params) -> bool:
    """Whether GPU-free work of 03-06 (sample answers, lm-eval, answers, judging) runs in the notebook's own
    kernel: yes at tiny (CPU); at GPU sizes it runs as a job where the GPUs are."""
    return job_hardware(params).launcher == "inprocess"


def check_hardware(params: Params, notebook: str, dry_run: bool = False) -> str | None:
    """The notebooks' first call after their parameters, before anything touches the Hub: fail fast, with
    the fix, when this machine can neither run nor launch the notebook's GPU work. Returns the placement
    ("inprocess", "local", "srun" or "sbatch"); None for dry runs, which only render plans."""
    if dry_run:
        return None
    hw = {"03_sft": params.sft.hardware, "04_dpo": params.dpo.hardware}.get(notebook) or job_hardware(params)
    return require_hardware(hw, f"{notebook} at size {params.size}")


def require_cuda(params: Params, what: str, dry_run: bool = False) -> None:
    """For stages placed by model size rather than a hardware section (eval, judge): 8b/70b need a CUDA
    GPU; fail fast, with the fix, on a machine without one. tiny and dry runs pass."""
    if params.model.base == "tiny" or dry_run:
        return
    import torch

    if not torch.cuda.is_available():
        raise HardwareError(
            f"{what} at size {params.size} runs {params.model.base} and needs a CUDA GPU, which this machine lacks; "
            "use size=tiny here, run on a GPU node, or set dry_run=True to see the plan"
        )
