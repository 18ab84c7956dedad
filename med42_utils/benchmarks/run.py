"""Run the med42_* lm-eval tasks over a list of models through lm-eval's Python API.

tiny: the model is loaded in memory and handed to lm-eval's HFLM. 8b/70b: lm-eval gets the path or
Hub id (HF backend, or vLLM when params.eval.backend is 'vllm' and vllm is installed). Both apply the
chat template and the model card's system prompt when params say so (paper section 3).
"""
from __future__ import annotations

import os

import importlib.util
import json
from pathlib import Path
from typing import Any

from ..chat import SYSTEM_PROMPT
from ..hardware import require_cuda
from ..params import Params
from ..paths import resolve, shown
from . import taught
from .data import TASK_TO_KEY, benchmark, benchmark_sources, load_benchmark, sample_docs, sample_note

TASKS_DIR = Path(__file__).resolve().parent / "tasks"
# Course tasks beside Table 4's: bundled, scored whole (eval.limit samples the Table 4 tasks only).
COURSE_TASKS = (taught.TASK,)
# The exam tasks that also run in the letter framing (tasks/med42_<x>_letters.yaml), as lm-eval's stock medqa_4options,
# medmcqa and mmlu_* tasks and the Open Medical-LLM Leaderboard score them. PubMedQA and ToxiGen are left out: their
# stock tasks already score the answer words (yes / no / maybe; Yes / No), which is our full-answer framing.
LETTER_TASKS = {t: f"{t}_letters" for t in
                ("med42_mmlu_medical", "med42_mmlu_pro_health", "med42_medmcqa", "med42_medqa_4options", "med42_usmle_sa")}


def check_tasks(tasks: list[str]) -> list[str]:
    """Every name must be one of our med42_* tasks (a typo would otherwise fail deep inside lm-eval)."""
    known = [*TASK_TO_KEY, *COURSE_TASKS]
    unknown = [t for t in tasks if t not in known]
    if unknown:
        raise ValueError(f"unknown task(s) {', '.join(unknown)} in eval.tasks; known: {', '.join(known)}")
    return list(tasks)


def _sources(params: Params) -> tuple[dict[str, str], dict[str, str]]:
    """({benchmark key: hub|local|bundled} to evaluate, {benchmark key: why skipped}) for params.eval.tasks."""
    e = params.eval
    per = {benchmark(k).key: v for k, v in e.sources.items()}
    keys = [TASK_TO_KEY[t] for t in check_tasks(e.tasks) if t not in COURSE_TASKS]
    return benchmark_sources(e.data_source, per, e.data_dir, keys)


def task_metadata(params: Params) -> dict[str, Any]:
    """What the tasks' custom_dataset hooks read (lm-eval metadata, also the CLI's --metadata): where each
    benchmark's rows come from, and the seeded, stratified row sample (med42_limit, med42_seed)."""
    e, ddir = params.eval, params.eval.data_dir
    if e.data_source == "local" and not ddir:
        raise ValueError("eval.data_source is 'local' but eval.data_dir is not set; point it at a folder holding "
                         "<benchmark>.jsonl exports or <benchmark>/ folders of official files (05: -p data_dir DIR; "
                         "docs/benchmark-data.md)")
    chosen, _ = _sources(params)
    return {"med42_data_source": e.data_source, "med42_data_dir": str(resolve(ddir)) if ddir else None,
            "med42_sources": chosen, "med42_limit": e.limit, "med42_seed": params.seed}


def eval_tasks(params: Params) -> tuple[list[str], dict[str, str]]:
    """(the tasks to run, {task: why skipped}): tasks whose files the data folder lacks are left out with a note."""
    task_metadata(params)  # a 'local' default with no data_dir is an error of its own, said first
    chosen, skipped = _sources(params)
    tasks = [t for t in params.eval.tasks if t in COURSE_TASKS or TASK_TO_KEY[t] in chosen]
    if not tasks:
        raise ValueError("no benchmark left to evaluate: " + "; ".join(f"{benchmark(k).task}: {why}" for k, why in skipped.items()))
    return tasks, {benchmark(k).task: why for k, why in skipped.items()}


def scored_docs(params: Params, task: str):
    """(LoadedBenchmark, the docs lm-eval scores): every kept row, or the seeded stratified sample of eval.limit;
    for a course task (None, every row)."""
    if task in COURSE_TASKS:
        return None, taught.taught_docs(params.eval.data_dir)
    md = task_metadata(params)
    key = TASK_TO_KEY[task]
    lb = load_benchmark(key, md["med42_sources"].get(key, md["med42_data_source"]), md["med42_data_dir"])
    return lb, sample_docs(key, lb.docs, params.eval.limit, params.seed)


def task_manager(params: Params):
    """Our task folder only: indexing lm-eval's ~14,000 built-in task YAMLs costs a minute on 2 cores."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(TASKS_DIR), include_defaults=False, metadata=task_metadata(params))


def chance_levels(params: Params, tasks: list[str]) -> dict[str, float]:
    """Accuracy of uniform guessing per task, over the same rows lm-eval scores (limit included)."""
    out = {}
    for t in check_tasks(tasks):
        docs = scored_docs(params, t)[1]
        out[t] = sum(1 / len(d["choices"]) for d in docs) / len(docs)
    return out


def make_lm(params: Params, name_or_path: str):
    """An lm-eval model for one checkpoint: in-memory HFLM at tiny, a path for 8b/70b (HF or vLLM)."""
    from lm_eval.models.huggingface import HFLM

    from ..hub import hub_load
    from ..inference import load_for_inference, plan_placement

    e = params.eval
    if params.model.base == "tiny":
        model, tokenizer, _ = load_for_inference(params, name_or_path)
        from ..quiet import quiet_lm

        # in the notebook's process: no progress bars for requests that take milliseconds
        return quiet_lm(HFLM(pretrained=model, tokenizer=tokenizer, batch_size=e.batch_size))
    if e.backend == "vllm":
        if importlib.util.find_spec("vllm") is None:
            raise RuntimeError("eval.backend is 'vllm' but vllm is not installed; pip install vllm on the GPU node, or set eval.backend: hf")
        from lm_eval.models.vllm_causallms import VLLM
        import torch

        with hub_load("model", name_or_path, params.size):
            return VLLM(pretrained=name_or_path, dtype=params.model.torch_dtype, batch_size="auto",
                        tensor_parallel_size=max(torch.cuda.device_count(), 1),
                        trust_remote_code=params.model.trust_remote_code)
    args = hflm_args(params, name_or_path, plan_placement(params, name_or_path))
    with hub_load("model", name_or_path, params.size):
        return HFLM(**args)


def hflm_args(params: Params, name_or_path: str, placement) -> dict:
    """lm-eval's HFLM model_args at GPU sizes, placed as inference.placement_for says: a model that fits one GPU
    loads on it (HFLM's default device); one that does not is spread by lm-eval's own `parallelize`
    (device_map='auto') with the placement's per-GPU cap as `max_memory_per_gpu`."""
    from ..models import attn_implementation

    args = dict(pretrained=name_or_path, dtype=params.model.torch_dtype, batch_size=params.eval.batch_size,
                attn_implementation=attn_implementation(params), trust_remote_code=params.model.trust_remote_code,
                parallelize=placement.mode == "spread")
    if placement.mode == "spread":
        args["max_memory_per_gpu"] = placement.max_memory[0]
    else:  # one GPU: the one the placement names; no GPU: the CPU (HFLM's own default is "cuda")
        args["device"] = placement.device
    return args


def fit_lm_roles(lm):
    """Make lm-eval's chat rendering keep the system prompt on templates without a system turn.

    lm-eval (HFLM.apply_chat_template) answers a template that raises on a system turn by dropping the system
    message; here the system text goes into the first user turn instead (chat.fit_roles, found by rendering).
    Templates that take a system turn (Llama 3) render exactly as before. Returns lm.
    """
    from ..chat import fit_roles

    original = getattr(lm, "apply_chat_template", None)
    tok = getattr(lm, "tokenizer", None)
    if original is None or tok is None or getattr(original, "_med42_fit_roles", False):
        return lm

    def apply_chat_template(chat_history, *args, **kwargs):
        return original(fit_roles(tok, list(chat_history)), *args, **kwargs)

    apply_chat_template._med42_fit_roles = True
    lm.apply_chat_template = apply_chat_template
    return lm


def evaluate(params: Params, lm, tasks: list[str] | None = None, log_samples: bool = False,
             framing: str = "full") -> dict:
    """simple_evaluate on our tasks, zero-shot.

    framing "full" (the paper's): each option's whole text is the continuation, through the chat template and
    system prompt as params say. framing "letters" (lm-eval's stock tasks, the Open Medical-LLM Leaderboard): the
    exam tasks' _letters variants over the same rows, a plain prompt ending "Answer:", one letter per option, no
    chat template and no system prompt.
    log_samples=True keeps the scored requests (context, continuation) per doc under results["samples"].
    """
    import logging

    from lm_eval import simple_evaluate

    # lm-eval warns once per custom_dataset task that kwargs come through --metadata: we know.
    logging.getLogger("lm_eval.api.task").setLevel(logging.ERROR)
    e = params.eval
    tasks = check_tasks(tasks or eval_tasks(params)[0])
    if framing == "letters":
        tasks = [LETTER_TASKS[t] for t in tasks if t in LETTER_TASKS]
    elif framing != "full":
        raise ValueError(f"unknown framing {framing!r}; use 'full' (the paper's) or 'letters' (lm-eval's stock tasks)")
    chat = e.apply_chat_template and framing == "full"
    if chat and e.system_prompt:
        fit_lm_roles(lm)
    return simple_evaluate(
        model=lm,
        tasks=tasks,
        num_fewshot=0,
        limit=None,  # eval.limit is a seeded stratified sample drawn by the tasks' loader (med42_limit), not the first rows
        apply_chat_template=chat,
        system_instruction=SYSTEM_PROMPT if chat and e.system_prompt else None,
        task_manager=task_manager(params),
        log_samples=log_samples,
        random_seed=params.seed,
        numpy_random_seed=params.seed,
        torch_random_seed=params.seed,
        fewshot_random_seed=params.seed,
    )


def evaluate_all(params: Params, lm, tasks: list[str], letters: bool) -> dict:
    """One model on `tasks` in the full-answer framing and, with `letters`, on the exams again in the letter
    framing; lm-eval's two results merged into one dict, samples logged."""
    runs = [evaluate(params, lm, tasks, log_samples=True)]
    if letters and any(t in LETTER_TASKS for t in tasks):
        runs.append(evaluate(params, lm, tasks, log_samples=True, framing="letters"))
    merged = dict(runs[0])
    for key in ("results", "n-samples", "samples", "configs", "versions"):
        merged[key] = {k: v for r in runs for k, v in (r.get(key) or {}).items()}
    return merged


def scores(results: dict) -> dict[str, dict[str, float]]:
    """{task: {acc, acc_norm, acc_stderr, n}} from lm-eval's results dict."""
    out = {}
    for task, r in results["results"].items():
        out[task] = {
            "acc": r["acc,none"],
            "acc_norm": r["acc_norm,none"],
            "acc_stderr": r.get("acc_stderr,none"),
            "n": results.get("n-samples", {}).get(task, {}).get("effective", r.get("sample_len")),
        }
    return out


def save_raw(results: dict, path: Path) -> Path:
    """lm-eval's results as JSON (per-sample logs left out)."""
    from lm_eval.utils import handle_non_serializable

    doc = {k: v for k, v in results.items() if k != "samples"}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, default=handle_non_serializable))
    return path


def token_counter(lm):
    """text -> number of tokens, with the model's own tokenizer (lm-eval's tok_encode), or None if it has none."""
    enc = getattr(lm, "tok_encode", None)
    return None if enc is None else (lambda text: len(enc(text, add_special_tokens=False)))


def save_questions(results: dict, path: Path, token_count=None) -> Path:
    """Per task, one record per scored question (results.question_records): picks under acc and acc_norm, 0/1
    scores, each choice's log-likelihood and tokens; what 05's length, per-subject and paired tables read."""
    from .results import question_records

    out = {task: question_records(samples, token_count) for task, samples in results.get("samples", {}).items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out))
    return path


def save_choices(results: dict, path: Path) -> Path:
    """Each question's answer-choice log-likelihoods, {task: [[one per choice] per question]}, as JSON.

    What decides a pick, kept so that 05 can show how far training moved it (results.choice_shift).
    """
    out = {}
    for task, samples in results.get("samples", {}).items():
        out[task] = [[float(r[0]) for r in s["filtered_resps"]] for s in sorted(samples, key=lambda s: s["doc_id"])]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out))
    return path


DONE = ".done.json"  # raw/<stage>.done.json: the model's request and results, written after its files


def model_request(params: Params, run_name: str, stage: str, path: str, tasks: list[str], letters: bool) -> dict:
    """What one model's evaluation depends on: its weights (the stage manifest's fingerprint, or the path/Hub id),
    the tasks and framings, the eval params and the seed. Equal requests mean the recorded results still hold."""
    from ..extra_models import extra_fingerprint, find_extra
    from ..manifest import StageMissingError, fingerprint
    from ..models import model_stage_dirs

    extra = find_extra(params, stage)
    if extra is not None:
        weights = extra_fingerprint(params, extra)
    else:
        dirs = model_stage_dirs(params, run_name, [stage])
        try:
            weights = fingerprint(dirs[0]) if dirs else str(path)
        except StageMissingError:
            weights = str(path)
    return {"model": str(path), "weights": weights, "tasks": list(tasks), "letters": letters,
            "eval": params.eval.model_dump(), "model_params": params.model.model_dump(), "seed": params.seed}


def finished(out_dir: Path, stage: str, request: dict) -> dict | None:
    """The recorded results of `stage` when its evaluation finished for this same request (None: evaluate it)."""
    marker = Path(out_dir) / "raw" / f"{stage}{DONE}"
    if not marker.is_file():
        return None
    try:
        doc = json.loads(marker.read_text())
    except json.JSONDecodeError:
        return None
    if doc.get("request") != request:
        return None
    result = doc.get("result") or {}
    files = [result.get(k) for k in ("raw", "choices", "questions")]
    return result if all(f and Path(f).is_file() for f in files) else None


def run_models(params: Params, run_name: str, out_dir: Path, models: list[str] | None = None,
               resume: bool = True, only: str | None = None, slots: int = 1,
               worker_args: list[str] | None = None) -> dict[str, dict]:
    """Evaluate each model stage (base, sft, dpo_round1..3), then each extra model with weights (params
    extra_models), in turn; raw JSON to out_dir/raw/<stage>.json.

    Per model resume: a model whose evaluation finished for the same request (raw/<stage>.done.json, written after
    its files) is not evaluated again, so a job killed or requeued part way goes on at the next model; resume=False
    redoes every one. `only`: evaluate this one model (a worker of the one-model-per-GPU launch). `slots` > 1:
    that many models at once, one per GPU, in worker processes given `worker_args` (the params overrides; the
    caller decides, inference_plan.eval_slots).

    Returns {stage: {"model": path or Hub id, "raw": file, "scores": {task: {...}}}}.
    """
    from ..extra_models import eval_models, find_extra
    from ..models import resolve_model

    stages, notes = eval_models(params, models)
    for name, why in notes.items():
        print(f"skipping extra model {name}: {why}")
    tasks, skipped = eval_tasks(params)
    for t, why in skipped.items():
        print(f"skipping {t}: {why}")
    require_cuda(params, "05_benchmarks")
    paths = {s: resolve_model(params, run_name, s) for s in stages}  # fail before any run if one is missing
    letter_models = stages if params.eval.letter_models is None else params.eval.letter_models
    unknown = [m for m in letter_models if m not in stages]
    if unknown:
        raise ValueError(f"eval.letter_models names {', '.join(unknown)}, not in eval.models ({', '.join(stages)}); "
                         f"list models that are evaluated, or null for all of them")
    if only is not None:
        if only not in paths:
            raise ValueError(f"--only-model {only} is not one of the models to evaluate ({', '.join(paths)})")
        paths = {only: paths[only]}
    requests = {s: model_request(params, run_name, s, p, tasks, s in letter_models) for s, p in paths.items()}
    pending = [s for s in paths if not (resume and finished(out_dir, s, requests[s]))]
    if only is None and len(pending) > 1 and slots > 1:
        from .workers import run_workers

        run_workers(params, run_name, pending, slots, resume, log_dir=Path(out_dir) / "raw", extra_args=worker_args)
    out = {}
    for stage, path in paths.items():
        letters = stage in letter_models
        done = finished(out_dir, stage, requests[stage]) if resume else None
        if done is not None:
            print(f"[{stage}] evaluated before with the same model and settings: kept ({done['raw']})")
            out[stage] = done
            continue
        print(f"[{stage}] evaluating {shown(path) if os.path.isabs(str(path)) else path} on {len(tasks)} tasks" + (" (+ letter framing)" if letters else ""))
        lm = make_lm(params, path)
        results = evaluate_all(params, lm, tasks, letters)
        raw = save_raw(results, Path(out_dir) / "raw" / f"{stage}.json")
        choices = save_choices(results, Path(out_dir) / "raw" / f"{stage}.choices.json")
        questions = save_questions(results, Path(out_dir) / "raw" / f"{stage}.questions.json", token_counter(lm))
        out[stage] = {"model": str(path), "raw": str(raw), "choices": str(choices), "questions": str(questions),
                      "scores": scores(results), "extra": find_extra(params, stage) is not None}
        marker = Path(out_dir) / "raw" / f"{stage}{DONE}"
        tmp = marker.with_suffix(".tmp")
        tmp.write_text(json.dumps({"request": requests[stage], "result": out[stage]}))
        tmp.replace(marker)  # whole or not at all: a kill while writing leaves no marker
        del lm
    return out


def benchmark_overview(params: Params) -> list[dict]:
    """Per task: source and its layout, rows read, kept, scored (and how the sample was drawn), image questions
    dropped, every drop with its reason, chance accuracy; a skipped task (no files for it) with the reason."""
    tasks, skipped = eval_tasks(params)
    out = []
    for t in check_tasks(params.eval.tasks):
        if t in COURSE_TASKS:
            docs = scored_docs(params, t)[1]
            out.append({"task": t, "source": "bundled", "layout": taught.FILE_NAME, "note": "course task: facts the SFT samples teach",
                        "rows": len(docs), "kept": len(docs), "scored": len(docs), "sample": "every row", "image questions": 0,
                        "dropped": "-", "chance %": round(100 * sum(1 / len(d["choices"]) for d in docs) / len(docs), 1)})
            continue
        key = TASK_TO_KEY[t]
        if t in skipped:
            out.append({"task": t, "source": "skipped", "layout": "-", "note": skipped[t], "rows": 0, "kept": 0,
                        "scored": 0, "sample": "-", "image questions": 0, "dropped": "-", "chance %": float("nan")})
            continue
        lb, scored = scored_docs(params, t)
        out.append({
            "task": t, "source": shown(lb.origin) if os.path.isabs(str(lb.origin)) else lb.origin, "layout": lb.layout, "note": benchmark(t).note, "rows": lb.rows_read,
            "kept": len(lb.docs), "scored": len(scored), "sample": sample_note(key, len(scored), len(lb.docs), params.seed),
            "image questions": lb.image_questions,
            "dropped": "; ".join(f"{n} {why}" for why, n in lb.dropped.items()) or "-",
            "chance %": round(100 * sum(1 / len(d["choices"]) for d in scored) / len(scored), 1),
        })
    return out
