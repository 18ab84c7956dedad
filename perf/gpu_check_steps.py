"""The small steps of perf/gpu_check that have no script of their own, one per sub-command:

    python perf/gpu_check_steps.py env            [--cpu]   versions and the device
    python perf/gpu_check_steps.py equivalence    [--cpu]   (c) packed-vs-alone losses on the device
    python perf/gpu_check_steps.py judge          [--cpu]   (d) the judge path through the 8b judge's published template

Each prints what it does and ends with one line `RESULT {json}` that gpu_check puts in its summary; the exit
status says whether the step passed. --cpu runs the same code on the CPU (what the tests run).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PACKAGES = ("torch", "transformers", "tokenizers", "trl", "peft", "accelerate", "datasets", "lm_eval",
            "papermill", "liger_kernel", "triton", "numpy", "pyarrow", "pandas", "huggingface_hub")

# The card's judge, Prometheus 2 8x7B, carries Mixtral-8x7B-Instruct's published chat template, which takes no
# system turn (tests/fixtures/chat_templates/published.json, with its source); the judge fits the roles to it.
PUBLISHED_TEMPLATES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "chat_templates" / "published.json"
JUDGE_MODEL = "prometheus-eval/prometheus-8x7b-v2.0"


def judge_template() -> str:
    """The published chat template of the 8b/70b judge (Mixtral's), from the test fixtures."""
    fixtures = json.loads(PUBLISHED_TEMPLATES.read_text())
    name = fixtures["models"][JUDGE_MODEL]["templates"][0]
    return fixtures["templates"][name]["chat_template"]


def result(ok: bool, line: str, **figures) -> int:
    print(f"RESULT {json.dumps({'ok': ok, 'line': line, 'figures': figures}, default=str)}", flush=True)
    return 0 if ok else 1


def device_of(cpu: bool) -> str:
    import torch

    if cpu:
        return "cpu"
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run gpu_check on the GPU machine, or pass --cpu")
    return "cuda"


def env(cpu: bool) -> int:
    """Python, package versions and the device: what the other steps ran on."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = version(name.replace("_", "-"))
        except PackageNotFoundError:
            versions[name] = None
    import torch

    dev = {"cuda_available": torch.cuda.is_available(), "torch_cuda": torch.version.cuda}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        dev.update(name=p.name, memory_gib=round(p.total_memory / 2**30, 1), capability=f"{p.major}.{p.minor}",
                   count=torch.cuda.device_count())
    for k, v in {"python": platform.python_version(), **versions, **dev}.items():
        print(f"{k:18s} {v}")
    missing = [n for n, v in versions.items() if v is None and not (cpu and n in ("liger_kernel", "triton"))]
    ok = not missing and (cpu or dev["cuda_available"])
    where = dev.get("name", "CPU")
    line = (f"Python {platform.python_version()}, torch {versions['torch']}, transformers {versions['transformers']}, "
            f"trl {versions['trl']} on {where}" + (f"; missing: {', '.join(missing)}" if missing else ""))
    return result(ok, line, python=platform.python_version(), packages=versions, device=dev)


def _chunk(vocab: int, lengths=(37, 61, 23, 90), seed: int = 0) -> tuple[list[int], list[int]]:
    """One packed chunk of random token ids (the property does not depend on the text): ids and sample lengths."""
    import random

    rng = random.Random(seed)
    ids = [rng.randrange(3, vocab) for _ in range(sum(lengths))]
    return ids, list(lengths)


def equivalence(cpu: bool) -> int:
    """(c) Each sample's per-token losses alone vs inside one packed chunk, on the device: boundary-aware
    packing (restarting position ids; or an explicit block mask) must match, concatenation must not."""
    import torch
    from transformers import AutoModelForCausalLM

    from med42_utils.packing import loss_equivalence
    from med42_utils.params import load_params
    from med42_utils.tiny_model import resolve_base_model

    device = device_of(cpu)
    params = load_params("tiny")
    path = resolve_base_model(params)
    from transformers import AutoConfig

    ids, lens = _chunk(AutoConfig.from_pretrained(path).vocab_size)
    # (dtype, attention, masking route, tolerance on the boundary-aware difference)
    cases = [("float32", "sdpa", "position_ids", 1e-4), ("float32", "sdpa", "block_mask", 1e-4),
             ("bfloat16", "sdpa", "position_ids", 0.1)]
    if not cpu:
        cases.insert(2, ("float32", "flex_attention", "position_ids", 1e-4))
    rows, ok = [], True
    for dtype, attn, mode, tol in cases:
        t0 = time.perf_counter()
        model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype), attn_implementation=attn).to(device)
        eq = loss_equivalence(model, ids, lens, mode=mode)
        good = eq.max_abs_diff_boundary_aware < tol and eq.max_abs_diff_concatenated > 1e-2
        ok &= good
        rows.append({"dtype": dtype, "attn": attn, "mode": mode, "device": str(model.device),
                     "max_abs_diff_boundary_aware": eq.max_abs_diff_boundary_aware,
                     "max_abs_diff_concatenated": eq.max_abs_diff_concatenated, "tolerance": tol, "ok": good,
                     "seconds": round(time.perf_counter() - t0, 2)})
        print(f"{dtype:9s} {attn:15s} {mode:13s} on {model.device}: boundary-aware max |diff| "
              f"{eq.max_abs_diff_boundary_aware:.2e} (< {tol:g}: {'yes' if good else 'NO'}), concatenated "
              f"{eq.max_abs_diff_concatenated:.2e}", flush=True)
    worst = max(r["max_abs_diff_boundary_aware"] for r in rows if r["dtype"] == "float32")
    line = (f"{len(lens)} samples, {sum(lens)} tokens on {device}: float32 boundary-aware max |diff| {worst:.1e} "
            f"over {sum(r['dtype'] == 'float32' for r in rows)} routes; concatenated differs as it must"
            if ok else "packed and alone losses disagree: " + "; ".join(
                f"{r['dtype']} {r['attn']} {r['mode']} {r['max_abs_diff_boundary_aware']:.1e}" for r in rows if not r["ok"]))
    return result(ok, line, samples=len(lens), tokens=sum(lens), cases=rows)


def judge(cpu: bool) -> int:
    """(d) The judge path on the device with the 8b judge's published (Mixtral) chat template and 8b's judge settings
    (Prometheus 2's own prompt, its sampling, roles fitted by rendering): the log-prob judge and the generating
    judge run on the tiny model there."""
    from med42_utils.chat import render
    from med42_utils.judging.judge import LogprobJudge, TransformersJudge
    from med42_utils.judging.prometheus import REL_SYSTEM_PROMPT
    from med42_utils.judging.prompt import judge_messages
    from med42_utils.judging.questions import BUNDLED
    from med42_utils.inference import load_for_inference
    from med42_utils.params import load_params
    from med42_utils.tiny_model import resolve_base_model

    device = device_of(cpu)
    params = load_params("tiny" if cpu else "gpu_smoke")  # gpu_smoke: the tiny model in bfloat16
    path = resolve_base_model(params)
    model, tok, placed = load_for_inference(params, path, what="judge model")  # the loader 06 uses: it places it
    tok.chat_template = judge_template()
    j8 = load_params("8b").judge  # the GPU sizes' judge settings: prompt style, ties, sampling, retries
    style = j8.prompt
    n = 1 if cpu else 4  # questions (each shown in both orders)
    rows = [json.loads(x) for x in BUNDLED.read_text().splitlines()[:n]]
    # answers: the reference and a shortened copy, shown in both orders (the judge stage swaps positions too)
    items = []
    for r in rows:
        short = r["reference"].split(";")[0].split(".")[0]
        items += [(r["question"], r["reference"], short, r["reference"]), (r["question"], short, r["reference"], r["reference"])]
    text = render(tok, judge_messages(*items[0], allow_ties=j8.allow_ties, style=style), add_generation_prompt=True)
    system_at = text.find(REL_SYSTEM_PROMPT.strip()[:40])
    checks = {
        "starts [INST] after bos": text.startswith(f"{tok.bos_token}[INST] "),
        "system text inside the first user turn": 0 <= system_at < text.find("[/INST]"),
        "ends [/INST]": text.endswith(" [/INST]"),
        "one turn": text.count("[INST]") == 1,
        "no Llama 3 headers": "<|start_header_id|>" not in text,
    }
    for k, v in checks.items():
        print(f"render: {k}: {'yes' if v else 'NO'}")
    t0 = time.perf_counter()
    lp = LogprobJudge(model, tok, "tiny", batch_size=4, allow_ties=j8.allow_ties, style=style).compare_many(items)
    lp_s = time.perf_counter() - t0
    sampling = j8.judge_sampling.model_dump()
    if cpu:
        sampling["max_new_tokens"] = 8  # the CPU run checks the path, not the text
    t0 = time.perf_counter()
    gen = TransformersJudge(model, tok, "tiny", sampling, max_retries=1, batch_size=4, allow_ties=j8.allow_ties,
                            style=style).compare_many(items)
    gen_s = time.perf_counter() - t0
    lp_ok = all(v.winner in ("A", "B") for v in lp)
    errors = [v.reason for v in gen if v.reason and v.reason.startswith("backend error")]
    for v in gen[:2]:
        print(f"generated (attempt {v.attempts}): {v.raw[:100]!r} -> {v.winner} ({v.reason})")
    ok = all(checks.values()) and lp_ok and not errors and str(model.device).startswith(device)
    line = (f"{len(items)} judge prompts ({len(tok(text)['input_ids'])} tokens each, {style} prompt through Mixtral's "
            f"published template, system text in the user turn) on {model.device}: log-prob judge {sum(v.winner in ('A', 'B') for v in lp)}/{len(lp)} "
            f"verdicts in {lp_s:.1f}s; generating judge ran {sum(v.attempts for v in gen)} generations in {gen_s:.1f}s, "
            f"{sum(v.parsed for v in gen)} parseable (a random tiny model rarely writes '[RESULT] A')"
            + (f"; backend errors: {errors[0]}" if errors else ""))
    return result(ok, line, device=str(model.device), placement=placed.describe(), dtype=str(model.dtype),
                  render_checks=checks,
                  prompt_tokens=len(tok(text)["input_ids"]), logprob_verdicts=[v.winner for v in lp],
                  logprob_seconds=round(lp_s, 2), generated_parsed=sum(v.parsed for v in gen),
                  generations=sum(v.attempts for v in gen), generate_seconds=round(gen_s, 2),
                  backend_errors=errors[:3], prompt_head=text[:160])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=["env", "equivalence", "judge"])
    ap.add_argument("--cpu", action="store_true")
    a = ap.parse_args(argv)
    if a.cpu:
        import torch

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))  # 2 cores, unless the caller set fewer
    return {"env": env, "equivalence": equivalence, "judge": judge}[a.step](a.cpu)


if __name__ == "__main__":
    sys.exit(main())
