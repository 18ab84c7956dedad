"""The med42_* lm-eval tasks: prompts through the chat template, full-answer continuations, acc on a known case."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from med42_utils.benchmarks.data import BENCHMARKS, load_benchmark
from med42_utils.benchmarks.run import TASKS_DIR, evaluate, make_lm, run_models, scores
from med42_utils.chat import SYSTEM_PROMPT
from med42_utils.params import load_params

TASKS = [b.task for b in BENCHMARKS.values()]
BOT, USER = "<|begin_of_text|>", "<|start_header_id|>user<|end_header_id|>\n\n"
ASSISTANT = "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"


@pytest.fixture(scope="module")
def tiny_lm(tiny_model_path):
    return make_lm(load_params("tiny"), tiny_model_path)


@pytest.fixture(scope="module")
def chat_samples(tiny_lm):
    p = load_params("tiny", {"eval.limit": 2})
    return evaluate(p, tiny_lm, TASKS, log_samples=True)


@pytest.mark.parametrize("task", TASKS)
def test_chat_template_wraps_question_and_continuation_is_full_answer(chat_samples, tiny_lm, task):
    docs = load_benchmark(task, "bundled").docs
    samples = chat_samples["samples"][task]
    assert len(samples) == 2
    for s in samples:
        doc = next(d for d in docs if d["id"] == s["doc"]["id"])
        ctxs = {a[0] for a in s["arguments"]}
        conts = [a[1] for a in s["arguments"]]
        assert len(ctxs) == 1
        ctx = ctxs.pop()
        assert ctx == (f"{BOT}<|start_header_id|>system<|end_header_id|>\n\n{SYSTEM_PROMPT}"
                       f"<|eot_id|>{USER}{doc['query']}{ASSISTANT}")
        assert conts == doc["choices"]  # the whole answer text right after the assistant header
        assert tiny_lm.tok_encode(ctx).count(tiny_lm.tokenizer.convert_tokens_to_ids(BOT)) == 1
    r = chat_samples["results"][task]
    assert 0 <= r["acc,none"] <= 1 and 0 <= r["acc_norm,none"] <= 1


def test_plain_prompt_without_chat_template(tiny_lm):
    p = load_params("tiny", {"eval.limit": 1, "eval.apply_chat_template": False, "eval.system_prompt": False})
    s = evaluate(p, tiny_lm, ["med42_medqa_4options"], log_samples=True)["samples"]["med42_medqa_4options"][0]
    from med42_utils.benchmarks.data import sample_docs

    doc = sample_docs("medqa", load_benchmark("medqa", "bundled").docs, 1, p.seed)[0]  # the seeded sample of 1
    assert [a[0] for a in s["arguments"]] == [doc["query"]] * 4
    assert [a[1] for a in s["arguments"]] == [" " + c for c in doc["choices"]]


class _SaysYes:
    """A fake lm-eval LM whose log-likelihoods we control: 'Yes' scores 0, anything else -5 per character of the answer."""

    def __new__(cls):
        from lm_eval.api.model import LM

        class Fake(LM):
            def loglikelihood(self, requests):
                return [(0.0 if r.args[1].strip() == "Yes" else -5.0 * len(r.args[1].strip()), False) for r in requests]

            def loglikelihood_rolling(self, requests):
                raise NotImplementedError

            def generate_until(self, requests):
                raise NotImplementedError

        return Fake()


def test_acc_on_a_known_case():
    p = load_params("tiny", {"eval.limit": None, "eval.apply_chat_template": False, "eval.system_prompt": False})
    r = evaluate(p, _SaysYes(), ["med42_toxigen", "med42_pubmedqa"])
    tox = load_benchmark("toxigen", "bundled").docs
    # always answering "Yes" is right exactly on the hateful rows: 4 of the 12 bundled statements
    assert r["results"]["med42_toxigen"]["acc,none"] == pytest.approx(sum(d["answer"] == 1 for d in tox) / len(tox))
    assert r["results"]["med42_toxigen"]["acc,none"] == pytest.approx(4 / 12)
    # PubMedQA has no "Yes" choice ("yes" is lower case): every choice scores -5/char, so acc picks the
    # shortest answer ("no") and acc_norm (per-char) ties and takes the first ("yes")
    pub = load_benchmark("pubmedqa", "bundled").docs
    s = scores(r)["med42_pubmedqa"]
    assert s["acc"] == pytest.approx(sum(d["answer"] == 1 for d in pub) / len(pub))
    assert s["acc_norm"] == pytest.approx(sum(d["answer"] == 0 for d in pub) / len(pub))
    assert s["n"] == len(pub)


@pytest.fixture()
def standin_run(tiny_model_path):
    """A throwaway run whose sft stage is a stand-in (the tiny base model), removed afterwards."""
    from med42_utils.manifest import write_manifest
    from med42_utils.paths import run_dir
    from med42_utils.stages import stage_model_dir

    p = load_params("tiny")
    name = f"pytest-bench-{uuid.uuid4().hex[:6]}"
    d = stage_model_dir(p, name, "sft")
    shutil.copytree(tiny_model_path, d)
    write_manifest(d.parent, "standin", p)
    yield name
    shutil.rmtree(run_dir("tiny", name), ignore_errors=True)


def test_run_models_saves_raw_json_per_model(standin_run, tmp_path):
    p = load_params("tiny", {"eval.limit": 2, "eval.tasks": ["med42_toxigen", "med42_medqa_4options"], "eval.models": ["base", "sft"],
                             "eval.letter_models": ["sft"], "extra_models": []})  # 05 scores tiny-release: test_nb_05
    out = run_models(p, standin_run, tmp_path)
    assert list(out) == ["base", "sft"]
    for stage, o in out.items():
        raw = json.loads(Path(o["raw"]).read_text())
        assert Path(o["raw"]) == tmp_path / "raw" / f"{stage}.json"
        letters = {"med42_medqa_4options_letters"} if stage == "sft" else set()
        assert set(raw["results"]) == {"med42_toxigen", "med42_medqa_4options"} | letters
        questions = json.loads(Path(o["questions"]).read_text())  # one record per question, tokens counted
        assert set(questions) == set(raw["results"]) and len(questions["med42_medqa_4options"]) == 2
        assert all(len(r["tokens"]) == len(r["lls"]) == 4 for r in questions["med42_medqa_4options"])
        assert o["scores"]["med42_toxigen"]["acc"] == raw["results"]["med42_toxigen"]["acc,none"]
        assert o["scores"]["med42_toxigen"]["n"] == 2
    # the stand-in is the same weights as base: same scores
    assert out["base"]["scores"] == {t: v for t, v in out["sft"]["scores"].items() if not t.endswith("_letters")}
    p = load_params("tiny", {"eval.models": ["base"], "eval.letter_models": ["sft"]})
    with pytest.raises(ValueError, match="eval.letter_models names sft, not in eval.models"):
        run_models(p, standin_run, tmp_path / "x")


def test_missing_stage_and_unknown_task_fail_before_running(standin_run, tmp_path):
    from med42_utils.manifest import StageMissingError

    p = load_params("tiny", {"eval.models": ["base", "dpo_round3"]})
    with pytest.raises(StageMissingError, match="04_dpo.ipynb"):
        run_models(p, standin_run, tmp_path)
    p = load_params("tiny", {"eval.tasks": ["med42_medqa"]})
    with pytest.raises(ValueError, match="unknown task.*med42_medqa in eval.tasks; known: med42_mmlu_medical"):
        run_models(p, standin_run, tmp_path)
    p = load_params("tiny", {"eval.models": ["dpo_round9"]})
    with pytest.raises(ValueError, match="unknown model stage 'dpo_round9'"):
        run_models(p, standin_run, tmp_path)
    p = load_params("tiny", {"eval.data_source": "local", "eval.models": ["base"]})
    with pytest.raises(ValueError, match="eval.data_dir is not set"):
        run_models(p, standin_run, tmp_path)
    assert not (tmp_path / "raw").exists()


@pytest.mark.slow
def test_lm_eval_cli_with_include_path(tiny_model_path, tmp_path):
    lm_eval = Path(sys.executable).parent / "lm_eval"
    cmd = [str(lm_eval), "--model", "hf", "--model_args", f"pretrained={tiny_model_path},dtype=float32",
           "--tasks", "med42_medqa_4options,med42_toxigen", "--include_path", str(TASKS_DIR),
           "--apply_chat_template", "--system_instruction", SYSTEM_PROMPT,
           "--metadata", json.dumps({"med42_data_source": "bundled"}),
           "--limit", "2", "--batch_size", "4", "--device", "cpu", "--output_path", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    files = list(tmp_path.rglob("results_*.json"))
    assert len(files) == 1
    res = json.loads(files[0].read_text())
    for t in ("med42_medqa_4options", "med42_toxigen"):
        assert 0 <= res["results"][t]["acc,none"] <= 1 and "acc_norm,none" in res["results"][t]
        assert res["n-samples"][t]["effective"] == 2
    assert res["config"]["model_args"]["pretrained"] == str(tiny_model_path) or str(tiny_model_path) in json.dumps(res["config"])


# ---------------------------------------------------------------- the letter framing and the taught facts
class _SaysC:
    """A fake lm-eval LM that likes the letter C: ' C' scores 0, anything else -5."""

    def __new__(cls):
        from lm_eval.api.model import LM

        class Fake(LM):
            def loglikelihood(self, requests):
                self.requests = list(requests)
                return [(0.0 if r.args[1] == " C" else -5.0, False) for r in requests]

            def loglikelihood_rolling(self, requests):
                raise NotImplementedError

            def generate_until(self, requests):
                raise NotImplementedError

        return Fake()


def test_letter_framing_is_the_stock_prompt_without_chat_template():
    from med42_utils.benchmarks.run import LETTER_TASKS

    p = load_params("tiny", {"eval.limit": None})  # tiny applies the chat template: the letter framing must not
    lm = _SaysC()
    r = evaluate(p, lm, ["med42_medqa_4options", "med42_toxigen"], log_samples=True, framing="letters")
    assert set(r["results"]) == {LETTER_TASKS["med42_medqa_4options"]}  # ToxiGen has no letter variant
    docs = load_benchmark("medqa", "bundled").docs
    s = sorted(r["samples"]["med42_medqa_4options_letters"], key=lambda s: s["doc_id"])[0]
    opts = "".join(f"{'ABCD'[i]}. {c}\n" for i, c in enumerate(docs[0]["choices"]))
    assert [a[0] for a in s["arguments"]] == [f"Question: {docs[0]['question']}\n{opts}Answer:"] * 4
    assert [a[1] for a in s["arguments"]] == [" A", " B", " C", " D"]
    # always answering C is right exactly where the answer is the third option
    assert r["results"]["med42_medqa_4options_letters"]["acc,none"] == pytest.approx(
        sum(d["answer"] == 2 for d in docs) / len(docs))
    with pytest.raises(ValueError, match="unknown framing"):
        evaluate(p, lm, ["med42_medqa_4options"], framing="letter")


def test_taught_facts_options_are_equally_long_and_taught_and_uncontaminated(tiny_model_path):
    """What makes the taught facts a fair test: every option has the same number of tiny tokens, the right
    answer is in the bundled SFT samples and no wrong option is, and 01's decontamination finds no question in
    any bundled SFT row, though it finds one that a row quotes."""
    from transformers import AutoTokenizer

    from med42_utils.benchmarks import taught
    from med42_utils.paths import RESOURCES

    def strings(v):
        return [v] if isinstance(v, str) else [x for i in (v.values() if isinstance(v, dict) else v if isinstance(v, list) else []) for x in strings(i)]

    texts = [" ".join(strings(json.loads(line))) for f in sorted((RESOURCES / "samples" / "sft").glob("*.jsonl"))
             for line in f.read_text().splitlines() if line.strip()]
    tok = AutoTokenizer.from_pretrained(tiny_model_path)
    rows = taught.taught_rows()
    assert len(rows) >= 20
    p = load_params("tiny")
    check = taught.taught_check(rows, texts, tok, p.data.decontam.ngram, p.data.decontam.threshold)
    assert check["same tokens"].all(), check[~check["same tokens"]]
    assert check["answer in SFT data"].all() and (check["wrong options in SFT data"] == 0).all()
    assert not check["contaminated"].any()
    # the check can fail: an SFT row that quotes a question with its options is flagged
    leak = taught.taught_docs()[3]["query"]
    assert taught.taught_check(rows, texts + [f"Question: {leak}"], tok, p.data.decontam.ngram,
                               p.data.decontam.threshold)["contaminated"].sum() == 1
    # the task is a known task and scores every row, whatever eval.limit says
    from med42_utils.benchmarks.run import chance_levels, scored_docs
    p = load_params("tiny", {"eval.limit": 2})
    assert len(scored_docs(p, taught.TASK)[1]) == len(rows)
    assert chance_levels(p, [taught.TASK])[taught.TASK] == pytest.approx(sum(1 / len(r["choices"]) for r in rows) / len(rows))


def test_taught_rows_bad_input_names_the_field(tmp_path):
    from med42_utils.benchmarks import taught
    from med42_utils.benchmarks.data import BenchmarkDataError

    (tmp_path / taught.FILE_NAME).write_text(json.dumps({"id": "x", "subject": "s", "taught_by": "medqa", "question": "q",
                                                         "choices": ["a", "b"], "answer": 2}) + "\n")
    with pytest.raises(BenchmarkDataError, match="'answer' 2 is not an index into 2 choices"):
        taught.taught_rows(tmp_path)
    (tmp_path / taught.FILE_NAME).write_text(json.dumps({"id": "x", "question": "q", "choices": ["a"], "answer": 0}) + "\n")
    with pytest.raises(BenchmarkDataError, match="field 'subject' must be a str"):
        taught.taught_rows(tmp_path)
