"""What a stage asks sbatch for on this site, whether that fits a partition, and the job's environment.

    parts = read_sinfo()                                  # None where sinfo is absent (a laptop's dry run)
    req = site_request(params.slurm.for_stage("sft"), hw, parts)
    req.lines                                             # the #SBATCH options beyond nodes and GPUs
    fit_problems(req, hw, parts)                          # [] or what does not fit, with the fix
    environment_lines()                                   # export lines for HF_HOME, HF_HUB_OFFLINE, ...

The options come from the `slurm` section of params (params/slurm.py; MED42_SLURM for one run).
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field

from .params.base import Hardware
from .params.slurm import SlurmOptions, time_hours


# The GPUs of one node where sinfo cannot say (a dry run off the cluster): the paper's H100 nodes hold 8.
H100_NODE_GPUS = 8


@dataclass
class NodeGroup:
    """One line of sinfo: `count` nodes of a partition alike in CPUs, GPUs and features."""

    count: int
    cpus: int
    gpus: int
    features: str = ""


@dataclass
class Partition:
    name: str
    default: bool
    max_hours: float | None                      # None: unlimited
    groups: list[NodeGroup] = field(default_factory=list)

    def nodes_with(self, gpus: int, cpus: int = 1) -> int:
        return sum(g.count for g in self.groups if g.gpus >= gpus and g.cpus >= cpus)

    def describe(self) -> str:
        nodes = ", ".join(f"{g.count} x ({g.cpus} CPUs, {g.gpus} GPUs)" for g in self.groups)
        limit = "no time limit" if self.max_hours is None else f"time limit {self.max_hours:g} h"
        return f"{self.name}{' (default)' if self.default else ''}: {nodes}; {limit}"


def gres_gpus(gres: str) -> int:
    """GPUs in a sinfo %G field: 'gpu:8', 'gpu:h100:8(S:0-1)', 'gpu:a100:4,gpu:v100:2' (6), '(null)' (0)."""
    total = 0
    for item in re.split(r",(?![^(]*\))", gres or ""):
        item = re.sub(r"\(.*?\)", "", item).strip()
        parts = item.split(":")
        if parts[0] == "gpu" and len(parts) >= 2 and parts[-1].isdigit():
            total += int(parts[-1])
    return total


SINFO_FORMAT = "%P|%D|%c|%G|%l|%f"


def parse_sinfo(text: str) -> list[Partition]:
    """`sinfo -h -o '%P|%D|%c|%G|%l|%f'` -> partitions with their node groups ('gpu*' marks the default).
    CPUs like '96+' (nodes differ) count as the smaller figure."""
    parts: dict[str, Partition] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        cols = line.split("|")
        if len(cols) < 5:
            raise ValueError(f"unexpected sinfo line {line!r} (format {SINFO_FORMAT})")
        name, count, cpus, gres, limit = (c.strip() for c in cols[:5])
        default = name.endswith("*")
        name = name.rstrip("*")
        hours = None if limit.lower() in ("n/a", "") else time_hours(limit)  # time_hours: 'infinite' is None
        p = parts.setdefault(name, Partition(name, default, hours))
        p.groups.append(NodeGroup(int(count), int(re.sub(r"\D.*", "", cpus) or 0), gres_gpus(gres),
                                  cols[5].strip() if len(cols) > 5 else ""))
    return list(parts.values())


def read_sinfo() -> list[Partition] | None:
    """The cluster's partitions from sinfo; None where sinfo is not on PATH or does not answer."""
    if shutil.which("sinfo") is None:
        return None
    try:
        r = subprocess.run(["sinfo", "-h", "-o", SINFO_FORMAT], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return None
    if r.returncode != 0:
        return None
    return parse_sinfo(r.stdout)


def _partition(name: str | None, parts: list[Partition] | None) -> Partition | None:
    for p in parts or []:
        if (name is None and p.default) or p.name == name:
            return p
    return None


@dataclass
class SiteRequest:
    """The resolved options of one job: the #SBATCH lines beyond nodes/GPUs, and how they were decided."""

    options: SlurmOptions
    cpus_per_task: int | None
    exclusive: bool
    node_gpus: int | None                        # GPUs of one node of the partition (None: unknown)
    notes: list[str] = field(default_factory=list)
    mem_gib: int | None = None                   # --mem for a job that does not take whole nodes

    @property
    def lines(self) -> list[str]:
        o = self.options
        out = [f"--{k}={v}" for k, v in (("partition", o.partition), ("account", o.account), ("qos", o.qos),
                                          ("time", o.time), ("constraint", o.constraint)) if v is not None]
        if self.cpus_per_task is not None:
            out.append(f"--cpus-per-task={self.cpus_per_task}")
        if self.exclusive:
            out += ["--exclusive", "--mem=0"]  # whole nodes, and all of their memory (not the default per CPU)
        elif self.mem_gib is not None and not any(x.startswith(("--mem=", "--mem-per")) for x in o.extra):
            out.append(f"--mem={self.mem_gib}G")
        return out + list(o.extra)


def site_request(options: SlurmOptions, hw: Hardware, parts: list[Partition] | None,
                 default_time: str | None = None, mem_gib: int | None = None, stage: str = "") -> SiteRequest:
    """Resolve cpus_per_task and exclusive (null = automatic) against the partition as sinfo shows it.

    `default_time`: the plan's suggested --time, used where params set no slurm time (capped at the partition's
    limit; a training job that reaches it checkpoints and requeues itself). `mem_gib`: the host memory a job that
    does not take whole nodes asks for (--mem), from the plan."""
    notes = []
    part = _partition(options.partition, parts)
    if options.time is None and default_time is not None:
        t = default_time
        if part is not None and part.max_hours is not None and time_hours(t) > part.max_hours:
            t = _hours_text(part.max_hours)
            notes.append(f"--time={t}: the plan suggests {default_time}, above partition {part.name}'s limit; the "
                         f"job stops at the limit (training checkpoints and requeues itself, docs/resume.md)")
        else:
            notes.append(f"--time={t}: from the plan's estimate (set slurm.{stage or '<stage>'}.time to choose)")
        options = options.model_copy(update={"time": t})
    fitting = [g for g in (part.groups if part else []) if g.gpus >= hw.gpus_per_node]
    if fitting:  # the job may land on any of these: it takes whole nodes only if it takes all GPUs of each
        node_gpus, node_cpus = max(g.gpus for g in fitting), min(g.cpus for g in fitting)
        share = min(max(1, g.cpus * hw.gpus_per_node // g.gpus) for g in fitting)
    else:
        node_gpus = H100_NODE_GPUS if hw.accelerator == "h100" and parts is None else None
        node_cpus = share = None
    if options.exclusive is not None:
        exclusive = options.exclusive
    else:
        exclusive = node_gpus is not None and hw.gpus_per_node >= node_gpus
    if options.cpus_per_task is not None:
        cpus = options.cpus_per_task
    elif node_cpus and node_gpus:
        cpus = node_cpus if exclusive else share
        notes.append(f"cpus per task {cpus}: {'all' if exclusive else 'its GPUs share'} of a node's {node_cpus} CPUs "
                     f"(sinfo, partition {part.name}); set slurm.cpus_per_task to choose")
    else:
        cpus = None
        notes.append("cpus per task: not asked (sinfo could not say what a node has): the job gets the site's "
                     "default CPUs and its step every CPU the job has on the node; set slurm.cpus_per_task")
    if exclusive:
        why = "forced by slurm.exclusive" if options.exclusive else \
            f"the job takes all {node_gpus} GPUs of each node"
        notes.append(f"--exclusive --mem=0: {why}")
    if options.time is None:
        notes.append("no slurm.time: the partition's default time limit applies and may end a long stage part way")
    if not exclusive and mem_gib is not None and hw.accelerator != "cpu":
        notes.append(f"--mem={mem_gib}G: host memory for loading the model(s) (med42_utils.cluster_plan."
                     f"host_memory_gib); add --mem=... to slurm.extra to choose")
    else:
        mem_gib = None
    return SiteRequest(options, cpus, exclusive, node_gpus, notes, mem_gib)


def _hours_text(hours: float) -> str:
    minutes = int(hours * 60)
    d, rest = divmod(minutes, 24 * 60)
    h, m = divmod(rest, 60)
    return f"{d}-{h:02d}:{m:02d}:00" if d else f"{h}:{m:02d}:00"


def fit_problems(req: SiteRequest, hw: Hardware, parts: list[Partition] | None, stage: str) -> list[str]:
    """What keeps the request from ever starting on this cluster (empty where it fits or sinfo is absent)."""
    if parts is None:
        return []
    o = req.options
    listing = "; ".join(p.describe() for p in parts) or "none"
    part = _partition(o.partition, parts)
    if part is None:
        which = f"partition '{o.partition}' does not exist" if o.partition else "the cluster has no default partition"
        return [f"{which} (sinfo: {listing}); set slurm.partition or slurm.{stage}.partition, e.g. "
                f"MED42_SLURM='partition=NAME'"]
    out = []
    cpus = req.cpus_per_task or 1
    have = part.nodes_with(hw.gpus_per_node, cpus)
    if have < hw.nodes:
        out.append(
            f"{stage} asks for {hw.nodes} node(s) x {hw.gpus_per_node} GPUs and {cpus} CPUs per node; partition "
            f"{part.name} has {have} node(s) with that much ({part.describe()}); choose another partition "
            f"(slurm.{stage}.partition), or fewer nodes/GPUs ({_hw_key(stage)}) or CPUs (slurm.cpus_per_task)")
    if o.time is not None and part.max_hours is not None and (time_hours(o.time) or float("inf")) > part.max_hours:
        out.append(f"slurm time {o.time} is over partition {part.name}'s limit of {part.max_hours:g} h; lower "
                   f"slurm.{stage}.time or choose a partition with a longer limit")
    return out


def _hw_key(stage: str) -> str:
    return f"{stage}.hardware" if stage in ("sft", "dpo") else "sft.hardware.gpus_per_node"


# Settings a job needs and SBATCH_EXPORT=NONE (or --export=NONE) would drop: written into the script.
# Never a secret: HF_TOKEN and any *_TOKEN / *_KEY stay in the submitting shell's environment only.
PASSED_IF_SET = ("HF_HUB_CACHE", "HF_DATASETS_CACHE", "HF_ASSETS_CACHE", "HF_XET_CACHE", "TRANSFORMERS_CACHE",
                 "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "TORCH_HOME", "TRITON_CACHE_DIR", "XDG_CACHE_HOME",
                 "MED42_VLLM")  # MED42_VLLM: the vllm executable of environment-vllm.txt's venv (judge.server vllm)
_SECRET = re.compile(r"TOKEN|KEY|SECRET|PASSWORD|CREDENTIAL", re.I)


def job_offline() -> bool:
    """Jobs run with HF_HUB_OFFLINE=1 (compute nodes are often offline) unless this shell sets it to 0/false."""
    return os.environ.get("HF_HUB_OFFLINE", "1").strip().lower() not in ("0", "false", "no", "off")


def job_environment() -> dict[str, str]:
    """The non-secret settings the job gets whatever the site exports: the Hugging Face cache this notebook
    sees, offline mode, the repo and outputs folders, and cache folders set in this shell."""
    from huggingface_hub import constants

    from .paths import outputs_root, repo_root

    env = {"HF_HOME": str(constants.HF_HOME), "HF_HUB_OFFLINE": "1" if job_offline() else "0",
           "MED42_ROOT": str(repo_root()), "MED42_OUTPUTS": str(outputs_root())}
    env.update({k: os.environ[k] for k in PASSED_IF_SET if os.environ.get(k)})
    leaked = [k for k in env if _SECRET.search(k)]
    if leaked:  # the names above are fixed; this guards against a careless addition to them
        raise RuntimeError(f"secrets must never be written into a job script: {leaked}")
    return env


def environment_lines() -> list[str]:
    return [f"export {k}={shlex.quote(v)}" for k, v in job_environment().items()]


# sbatch's refusals (its stderr, as SLURM words them) -> the params key that changes what it refused.
_HINTS = (
    ("invalid account", "account", "the account to charge (sacctmgr show assoc user=$USER)"),
    ("invalid partition", "partition", "a partition that exists (sinfo -s)"),
    ("invalid qos", "qos", "a QOS your account may use (sacctmgr show assoc user=$USER format=qos)"),
    ("time limit", "time", "a time limit the partition allows (sinfo -o '%P %l')"),
    ("invalid feature", "constraint", "node features that exist (sinfo -o '%P %f')"),
    ("node configuration is not available", "partition", "a partition whose nodes have what the job asks for "
     "(sinfo -o '%P %D %c %G'), or fewer CPUs per task (slurm.cpus_per_task)"),
)


def sbatch_hint(message: str, stage: str) -> str:
    """Where to fix what sbatch refused: the params key and the MED42_SLURM spelling for one run."""
    low = message.lower()
    for words, key, what in _HINTS:
        if words in low:
            return (f"fix: set slurm.{key} (or slurm.{stage}.{key}) in params/<size>.yaml to {what}; for one run "
                    f"MED42_SLURM='{key}=...'; see docs/cluster-options.md")
    return ""
