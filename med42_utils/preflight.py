"""Before a job is submitted: is everything it reads already there? Refuse early, saying what to run first.

    needs = stage_needs(params, run_name, "sft")           # 02's packed data and the base model
    problems(needs)                                          # [] or one line per missing thing, with the fix

A 70b SFT job submitted without 02's packed data would queue for hours, start on 48 GPUs and fail at once;
a job on an offline compute node fails the same way on a model missing from the cache. Both are checked here,
on the login node, where the check costs nothing. The partition fit (sinfo) is med42_utils.slurm_site's.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .extra_models import find_extra
from .params import Params
from .prefetch import is_hub_id
from .stages import STAGES, init_stage, model_notebook, stage_dir, stage_model_dir


def judge_weights_local(params: Params) -> bool:
    """Whether a job reads the judge model's weights on its node: loaded in its process, or served by a server it
    starts (judge.server). A judge at judge.api_base (server none) needs only the URL and, if named, its key's
    environment variable."""
    return params.judge.judge_route not in ("none", "remote")


@dataclass
class Needs:
    """What a job reads: earlier stages' folders (with the notebook that writes each) and Hub models."""

    size: str
    run_name: str
    stages: list[tuple[Path, str, str]] = field(default_factory=list)   # (folder, what, how to make it)
    models: list[tuple[str, str]] = field(default_factory=list)         # (Hub id, what for)


def _run_hint(notebook: str, size: str, run_name: str, extra: str = "") -> str:
    return f"papermill notebooks/{notebook}.ipynb out.ipynb -p size {size} -p run_name {run_name}{extra}"


def _add_model(needs: Needs, params: Params, run_name: str, stage: str) -> None:
    """'base' is the Hub model; 'sft'/'dpo_<round>' a trained model folder of this run."""
    extra = find_extra(params, stage)
    if extra is not None:
        if extra.hub is not None and is_hub_id(extra.hub):
            needs.models.append((extra.hub, f"extra model {stage}"))
        return
    if stage == "base":
        if is_hub_id(params.model.base):
            needs.models.append((params.model.base, "base model"))
        return
    d = stage_model_dir(params, run_name, stage)
    nb = model_notebook(stage)
    extra = "" if stage == "sft" else f" -p dpo_round {stage.removeprefix('dpo_')}"
    needs.stages.append((d / "config.json", f"the {stage} model", _run_hint(nb, params.size, run_name, extra)))


def stage_needs(params: Params, run_name: str, job: str, models: list[str] | None = None) -> Needs:
    """What `job` reads: 'sft', 'dpo_<round>', 'eval', 'judge' or '<stage>_samples' (its `models`)."""
    needs = Needs(params.size, run_name)
    if job == "sft":
        data, packing = STAGES["data"].notebook, STAGES["packing"].notebook
        needs.stages.append((stage_dir(params, run_name, "packing") / "manifest.json", "02's packed data",
                             f"{_run_hint(data, params.size, run_name)}, then {_run_hint(packing, params.size, run_name)}"))
        _add_model(needs, params, run_name, "base")
    elif job.startswith("dpo_") and not job.endswith("_samples"):  # a round; 04's "dpo_samples" reads `models`
        _add_model(needs, params, run_name, init_stage(params, job.removeprefix("dpo_")))
    elif job.startswith("onpolicy_"):  # a round's on-policy generation job: its starting model and the scorer
        name = job.removeprefix("onpolicy_")
        _add_model(needs, params, run_name, init_stage(params, name))
        op = params.dpo.onpolicy
        if op.enabled and name in op.rounds:
            if op.scorer == "reward_model" and op.reward_model and is_hub_id(op.reward_model):
                needs.models.append((op.reward_model, "on-policy reward model"))
            if op.scorer == "judge" and judge_weights_local(params) and is_hub_id(params.judge.model):
                needs.models.append((params.judge.model, "on-policy judge"))
    else:
        stages = models if models is not None else (
            params.eval.models if job == "eval" else params.judge.models if job == "judge" else [])
        if models is None and job in ("eval", "judge"):  # extra models beside the stages (params extra_models)
            stages = [*stages, *(m.name for m in params.extra_models if m.name not in stages)]
        remote_answers = job == "judge" and params.judge.answers_route == "remote"
        for s in stages:
            n_hub = len(needs.models)
            _add_model(needs, params, run_name, s)
            if remote_answers:  # answered by the server at judge.api_base: the job reads no weights of it
                del needs.models[n_hub:]
        if job == "judge" and judge_weights_local(params) and is_hub_id(params.judge.model):
            needs.models.append((params.judge.model, "judge model"))  # loaded, or served by the job's judge.server
    return needs


def model_cached(repo_id: str) -> bool:
    """Whether the Hugging Face cache this process sees (HF_HOME / HF_HUB_CACHE) holds the model's config and
    safetensors weights, as med42_utils.prefetch stores them."""
    from huggingface_hub import try_to_load_from_cache

    cfg = try_to_load_from_cache(repo_id, "config.json")
    return isinstance(cfg, str) and any(Path(cfg).parent.glob("*.safetensors"))


def problems(needs: Needs, offline: bool) -> list[str]:
    """One line per missing input, each with what to run first; Hub models count only for an offline job."""
    out = [f"{what} is missing ({path} not found): run first\n      {how}" for path, what, how in needs.stages
           if not path.exists()]
    if offline:
        from huggingface_hub import constants

        missing = [(m, why) for m, why in needs.models if not model_cached(m)]
        if missing:
            names = ", ".join(f"{m} ({why})" for m, why in missing)
            out.append(f"not in the Hugging Face cache at {constants.HF_HUB_CACHE}, and the job runs offline "
                       f"(HF_HUB_OFFLINE=1, compute nodes often have no internet): {names}. On a machine that "
                       f"reaches the Hub run first\n      python -m med42_utils.prefetch --size {needs.size}\n"
                       f"    (or, where compute nodes do reach the Hub, export HF_HUB_OFFLINE=0 before starting)")
    return out


# --- the job's Python: a CUDA build of torch and the packages its backend needs ---------------------------------

# Set only by the test suite, which runs GPU-labelled jobs on CPU (no CUDA on the test machine): the CUDA version
# the job's torch is taken to have. A stand-in for a hardware fact, never set in a real run.
TEST_JOB_CUDA_ENV = "MED42_TEST_JOB_TORCH_CUDA"


@dataclass
class JobPython:
    """What the job's Python has: torch's CUDA version (None for a CPU build) and which modules it can import; and
    the vllm executable a judge.server vllm job would start (None: not found). The job runs this same Python
    (launch.python_bin) with this environment, so the facts are read here; tests pass their own."""

    executable: str
    torch_cuda: str | None
    missing: list[str]
    vllm: str | None = None


def job_packages(params: Params, job: str) -> dict[str, str]:
    """{module: why} the job imports beyond the course's own dependencies, by its backend."""
    out: dict[str, str] = {}
    if job == "sft" or (job.startswith("dpo_") and not job.endswith("_samples")):
        stage = "sft" if job == "sft" else "dpo"
        if getattr(params, stage).speed.liger_kernel:
            out["liger_kernel"] = f"{stage}.speed.liger_kernel is on"
    if job == "eval" and params.eval.backend == "vllm":
        out["vllm"] = "eval.backend is vllm"
    j = params.judge
    if job == "judge":
        if j.answers_route == "vllm":
            out["vllm"] = "judge.answers_backend is vllm"
        if j.judge_route == "vllm":
            out["vllm"] = "judge.backend is vllm"
        if j.server == "transformers" and "server" in (j.answers_route, j.judge_route):
            for m in ("fastapi", "uvicorn", "openai"):  # transformers serve's `serving` extra
                out[m] = "judge.server is transformers (transformers serve)"
    return out


def serving_problems(params: Params, job: str, facts: JobPython) -> list[str]:
    """06's job (and an on-policy round scored by the judge) where models run behind a server: judge.server vllm
    needs the vllm executable of environment-vllm.txt's venv; a server at judge.api_base (judge.server none) needs
    the URL and the key's environment variable set when judge.api_key_env names one (its value is never shown)."""
    j = params.judge
    onpolicy_judge = (job.startswith("onpolicy_") and params.dpo.onpolicy.enabled
                      and params.dpo.onpolicy.scorer == "judge" and job.removeprefix("onpolicy_") in params.dpo.onpolicy.rounds)
    routes = ({j.answers_route, j.judge_route} if job == "judge" else {j.judge_route} if onpolicy_judge else set())
    out = []
    if "server" in routes and j.server == "vllm" and not facts.vllm:
        out.append("judge.server is vllm but no vllm executable was found ($MED42_VLLM, else vllm on PATH): vLLM "
                   "lives in its own venv; install it from environment-vllm.txt and export MED42_VLLM=<venv>/bin/vllm "
                   "before starting the job (docs/serving.md), or set judge.server none with judge.api_base")
    if "remote" in routes:
        if not j.api_base:
            out.append("judge.server is none, so the openai routes talk to a running server: set judge.api_base "
                       "(e.g. http://host:8000/v1), or judge.server vllm to start one per model")
        if j.api_key_env and not os.environ.get(j.api_key_env):
            out.append(f"judge.api_key_env names {j.api_key_env}, which is not set in this environment: export "
                       f"{j.api_key_env}=<your key> before starting (the key never goes in params)")
    if onpolicy_judge and j.judge_route == "server":
        out.append("dpo.onpolicy.scorer is judge, whose judge.server starts a server per model only in 06's job: for "
                   "the on-policy scorer set judge.backend transformers (in the job's process), or judge.server none "
                   "with judge.api_base of a running server")
    return out


def read_job_python(modules: list[str]) -> JobPython:
    import importlib.util
    import sys

    import torch

    from .serve import find_vllm

    cuda = os.environ.get(TEST_JOB_CUDA_ENV) or torch.version.cuda
    return JobPython(sys.executable, cuda, [m for m in modules if importlib.util.find_spec(m) is None], find_vllm())


def environment_problems(params: Params, job: str, accelerator: str, facts: JobPython | None = None) -> list[str]:
    """A GPU job whose Python has the CPU build of torch, or lacks its backend's packages, fails on the node after
    queueing: refuse it here, naming the fix. CPU jobs need no CUDA."""
    if accelerator == "cpu":
        return []
    need = job_packages(params, job)
    facts = facts or read_job_python(list(need))
    out = []
    if not facts.torch_cuda:
        out.append(f"the job runs {facts.executable}, whose torch is a CPU build (torch.version.cuda is None): the "
                   f"{accelerator} job would find no GPU. Start the notebook from an environment with CUDA torch "
                   f"(conda env create -f environment.yml on a GPU node, docs/install.md)")
    for m in facts.missing:
        out.append(f"{need.get(m, m)} but {m} is not installed in {facts.executable}: install it there "
                   f"(pip install -e .[gpu], docs/install.md) or change that setting")
    return out + serving_problems(params, job, facts)
