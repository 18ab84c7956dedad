"""The package's layers, lowest first: a module may import its own layer and the layers below, never above.
docs/architecture.md shows this table (`python -m med42_utils.layers` prints it) and tests/test_layers.py holds
every import in the package to it, imports inside functions included."""
from __future__ import annotations

import fnmatch

# (layer, what it holds, module patterns relative to med42_utils; the first layer whose pattern matches wins)
LAYERS: list[tuple[str, str, tuple[str, ...]]] = [
    ("stages of a run (notebook-facing)",
     "what a notebook calls: a stage's steps and the jobs it submits (they call the launcher)",
     ("data.stage", "packing.stage", "sft.stage", "dpo.rounds", "dpo.samples_job", "benchmarks.stage",
      "benchmarks.job", "judging.stage", "judging.job", "judging.report")),
    ("launch / runner", "plans, preflight, SLURM or accelerate launch, prefetch, budgets, the notebook runner",
     ("launch", "runner", "preflight", "prefetch", "budget", "cluster_plan", "inference_plan")),
    ("benchmarks / judging / serving", "lm-eval runs and results, answers, battles, Elo, an inference server",
     ("benchmarks", "benchmarks.*", "judging", "judging.*", "serve", "serve.*")),
    ("sft / dpo", "the trainers and what only they use: SFT config, DPO rounds' data, pairs, on-policy scoring",
     ("sft", "sft.*", "dpo", "dpo.*")),
    ("training core / inference",
     "loading models and tokenizers, checkpoints and resume, the shared training core, inference, the judges' "
     "backends (DPO's on-policy scorer uses them too)",
     ("models", "checkpoints", "training", "training.*", "inference", "inference.*",
      "judging.types", "judging.judge", "judging.prompt", "judging.parse", "judging.prometheus", "judging.reference")),
    ("packing", "tokenising and packing the SFT mixture", ("packing", "packing.*")),
    ("data", "datasets: the curated mixture, benchmark questions (01 decontaminates against them), preference "
     "pairs, clinical questions",
     ("data", "data.*", "benchmarks.data", "benchmarks.images", "benchmarks.taught", "benchmarks.tasks.*",
      "dpo.preference_data", "judging.questions")),
    ("params / foundations", "typed params, the stage table, paths, manifests, the command line, hardware, the tiny "
     "model, chat templates, the OpenAI-compatible chat client, logging and progress helpers",
     ("", "params", "params.*", "*")),
]
LAYERS.reverse()  # lowest first


def layer_of(module: str) -> int:
    """Index in LAYERS (0 = lowest) of a module named relative to med42_utils ('' = the package itself): the
    layer naming it exactly, else the one with the longest matching pattern ('benchmarks.tasks.*' over
    'benchmarks.*'), else the lowest."""
    for i, (_, _, pats) in enumerate(LAYERS):
        if module in pats:
            return i
    hits = [(len(p), i) for i, (_, _, pats) in enumerate(LAYERS) for p in pats if fnmatch.fnmatchcase(module, p)]
    return max(hits)[1] if hits else 0


def markdown() -> str:
    """The layers as a Markdown table, highest first (docs/architecture.md holds exactly this)."""
    rows = ["| layer | holds | modules |", "|---|---|---|"]
    for name, what, pats in reversed(LAYERS):
        mods = ", ".join(f"`{p}`" for p in pats if p not in ("", "*")) + (" and every other module" if "*" in pats else "")
        rows.append(f"| {name} | {what} | {mods} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
