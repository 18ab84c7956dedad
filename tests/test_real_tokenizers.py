"""The Llama 3 and Mixtral tokenizers the 8b/70b params name, built from packaged files (tests/real_tokenizers.py),
checked against published facts, then run through the tokenizer-dependent paths: assistant-only labels, the pad
token and stop ids, and the judge's prompt in the Mixtral template. Skips without the files (says why); required
in CI (.ci/run sets MED42_REQUIRE_REAL_TOKENIZERS=1)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from real_tokenizers import build_llama3, build_mixtral

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = json.loads((ROOT / "tests/fixtures/chat_templates/published.json").read_text(encoding="utf-8"))
MIXTRAL_CONTEXT = 32_768  # Mixtral-8x7B-Instruct-v0.1 config.json max_position_embeddings (Prometheus 2 8x7B's base)


@pytest.fixture(scope="module")
def llama31():
    return build_llama3("3.1")


@pytest.fixture(scope="module")
def llama3():
    return build_llama3("3")


@pytest.fixture(scope="module")
def mixtral(tmp_path_factory):
    return build_mixtral(tmp_path_factory.mktemp("mixtral"), TEMPLATES["templates"]["mistral_alternating"]["chat_template"])


def _llama3_published_template() -> str:
    import trl

    return (Path(trl.__file__).parent / "chat_templates" / TEMPLATES["templates"]["llama3"]["trl"]).read_text()


# ---------------------------------------------------------------- published facts
def test_llama31_tokenizer_matches_the_published_ids(llama31):
    assert len(llama31) == 128_256
    assert llama31("Hello world", add_special_tokens=False).input_ids == [9906, 1917]
    assert llama31("Hello world").input_ids == [128000, 9906, 1917]
    ids = llama31.convert_tokens_to_ids(["<|begin_of_text|>", "<|end_of_text|>", "<|finetune_right_pad_id|>",
                                         "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"])
    assert ids == [128000, 128001, 128004, 128006, 128007, 128009]
    assert llama31.decode([9906, 1917]) == "Hello world"


def test_llama3_naming_has_no_pad_token_so_pad_falls_back_to_end_of_turn(llama3, llama31):
    from med42_utils.models import ensure_pad_token

    assert len(llama3) == 128_256 and llama3("Hello world", add_special_tokens=False).input_ids == [9906, 1917]
    assert llama3.convert_ids_to_tokens([128002, 128004, 128006, 128009, 128255]) == [
        "<|reserved_special_token_0|>", "<|reserved_special_token_2|>", "<|start_header_id|>", "<|eot_id|>",
        "<|reserved_special_token_250|>"]
    assert "<|finetune_right_pad_id|>" not in llama3.get_vocab()
    for tok in (llama3, llama31):
        assert tok.pad_token is None  # as published: the Instruct tokenizers ship no pad token
    ensure_pad_token(llama31)
    ensure_pad_token(llama3)
    assert llama31.pad_token_id == 128004
    assert llama3.pad_token == "<|eot_id|>" and llama3.pad_token_id == 128009


def test_mixtral_tokenizer_renders_inst_as_mistral_does(mixtral):
    import sentencepiece as spm

    from med42_utils.chat import render
    from real_tokenizers import MISTRAL_V1_MODEL, require

    sp = spm.SentencePieceProcessor(model_file=str(require(MISTRAL_V1_MODEL)))
    assert len(mixtral) == 32_000 == sp.vocab_size()
    assert (mixtral.bos_token_id, mixtral.eos_token_id) == (1, 2)
    conv = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi"},
            {"role": "user", "content": "More"}]
    text = render(mixtral, conv)
    assert text == "<s>[INST] Hello [/INST]Hi</s>[INST] More [/INST]"
    ids = mixtral(text, add_special_tokens=False).input_ids
    # SentencePiece itself on each piece, the specials as their ids: what Mistral's own tokenizer produces
    assert ids == [1] + sp.encode("[INST] Hello [/INST]Hi") + [2] + sp.encode("[INST] More [/INST]")
    assert ids[:9] == [1, 733, 16289, 28793, 22557, 733, 28748, 16289, 28793]


# ---------------------------------------------------------------- the paths that depend on the tokenizer
@pytest.fixture(scope="module")
def curated(tiny_params):
    from med42_utils.data.curate import curate

    return curate(tiny_params.data, {}).dataset


@pytest.mark.parametrize("naming", ["3", "3.1"])
def test_assistant_only_labels_on_every_curated_conversation(curated, llama3, llama31, naming, tiny_model_path):
    """Every curated conversation of a tiny run: the training template renders exactly what the published Llama 3
    Instruct template renders, the labels cover exactly the assistant replies and their <|eot_id|> (check_labels),
    and TRL's collator, padding with the pad token (the <|eot_id|> itself under Llama 3's naming), keeps them."""
    from transformers import AutoTokenizer
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from med42_utils.chat import TRAINING_CHAT_TEMPLATE
    from med42_utils.models import ensure_pad_token
    from med42_utils.packing.labels import IGNORE, check_labels, tokenize_conversation

    tok = llama3 if naming == "3" else llama31
    ensure_pad_token(tok)
    published = _llama3_published_template()
    tiny = AutoTokenizer.from_pretrained(tiny_model_path)
    rows, n_llama, n_tiny = [], 0, 0
    for msgs in curated["messages"]:
        msgs = [dict(m) for m in msgs]
        assert (tok.apply_chat_template(msgs, chat_template=TRAINING_CHAT_TEMPLATE, tokenize=False)
                == tok.apply_chat_template(msgs, chat_template=published, tokenize=False))
        out = tokenize_conversation(tok, msgs)
        check_labels(tok, msgs, out["labels"])
        n_turns = sum(m["role"] == "assistant" for m in msgs)
        assert out["labels"].count(128009) == n_turns
        rows.append(out)
        n_llama += len(out["input_ids"])
        n_tiny += len(tokenize_conversation(tiny, msgs)["input_ids"])
    batch = DataCollatorForLanguageModeling(pad_token_id=tok.pad_token_id)(rows[:8])
    for r, ids, labels in zip(rows[:8], batch["input_ids"], batch["labels"]):
        kept = labels[labels != IGNORE].tolist()
        assert kept == [t for t in r["labels"] if t != IGNORE]  # the <|eot_id|> labels survive padding with it
        assert (ids == tok.pad_token_id).sum() >= r["input_ids"].count(tok.pad_token_id)
    print(f"\n{len(rows)} curated conversations: {n_llama:,} Llama 3 tokens, {n_tiny:,} tiny-tokenizer tokens "
          f"({n_tiny / n_llama:.2f}x)")
    assert len(rows) > 0 and n_llama < n_tiny  # the tiny tokenizer overcounts: budgets must not use it at 8b/70b


def test_stop_ids_end_at_the_end_of_turn(llama3, llama31, mixtral):
    """06's answers and the judge stop at <|eot_id|> with a Llama 3 tokenizer (either naming), at </s> with
    Mixtral's (whose vocabulary has no <|eot_id|>: it maps to <unk>, which must not become a stop id)."""
    from med42_utils.chat import stop_ids

    for tok in (llama3, llama31):
        assert 128009 in stop_ids(tok) and tok.eos_token == "<|eot_id|>"
    assert mixtral.convert_tokens_to_ids("<|eot_id|>") == mixtral.unk_token_id == 0
    assert stop_ids(mixtral) == [2]


@pytest.mark.parametrize("size", ["8b", "70b"])
def test_judge_prompt_fits_mixtral_context_with_card_length_answers(size, mixtral, llama3):
    """The judge's prompt as the 8b/70b params build it, both answers at the card's max_new_tokens (counted by the
    Llama 3 tokenizer that generates them), in Mixtral's template and tokenizer: every part is there and the prompt
    plus the judge's own max_new_tokens fits Mixtral's context."""
    from med42_utils.chat import render
    from med42_utils.judging.prompt import judge_messages
    from med42_utils.params import load_params

    p = load_params(size)
    assert p.judge.model == "prometheus-eval/prometheus-8x7b-v2.0"
    n = p.judge.sampling.max_new_tokens
    filler = ("The patient should have an ECG within ten minutes, troponin at presentation and at three hours, "
              "aspirin 300 mg unless contraindicated, and urgent cardiology review if ST elevation is present. ")
    ids = llama3(filler * 40, add_special_tokens=False).input_ids
    answer_a, answer_b = llama3.decode(ids[:n]), llama3.decode(ids[1:n + 1])
    assert len(llama3(answer_a, add_special_tokens=False).input_ids) == n
    question = "A 54-year-old man has crushing chest pain for 40 minutes. What is the first test to order?"
    msgs = judge_messages(question, answer_a, answer_b, None, allow_ties=p.judge.allow_ties, style=p.judge.prompt)
    text = render(mixtral, msgs, add_generation_prompt=True)
    prompt_ids = mixtral(text, add_special_tokens=False).input_ids
    decoded = mixtral.decode(prompt_ids)
    for part in [question, answer_a.strip(), answer_b.strip()] + [m["content"].strip()[:200] for m in msgs]:
        assert part[:200] in decoded
    total = len(prompt_ids) + p.judge.judge_sampling.max_new_tokens
    print(f"\n{size}: judge prompt {len(prompt_ids):,} Mixtral tokens (answers {n} Llama 3 tokens each = "
          f"{len(mixtral(answer_a, add_special_tokens=False).input_ids)} Mixtral tokens) + "
          f"{p.judge.judge_sampling.max_new_tokens} to generate = {total:,} of {MIXTRAL_CONTEXT:,}")
    assert total <= MIXTRAL_CONTEXT
    assert total <= p.judge.server_max_model_len  # the judge's vLLM server (--max-model-len) takes the whole request
    from med42_utils.estimates import JUDGE_PROMPT_TOKENS

    assert len(prompt_ids) <= JUDGE_PROMPT_TOKENS  # 00's judge KV-cache estimate sizes the prompt at this


def test_lm_eval_renders_05s_prompts_for_llama3(llama3, tiny_model_path):
    """05's full-answer prompts as lm-eval itself renders and encodes them (HFLM.apply_chat_template, _encode_pair)
    with the Llama 3 tokenizer and its published template: the card's system prompt, the question, one
    <|begin_of_text|>, and each option's whole text as the continuation after the assistant header (lm-eval scores
    the header's closing "\n\n" with it, the same token for every option). The
    tiny model stands in for the 8B weights (never run: loglikelihood records the encoded requests instead)."""
    import copy

    from lm_eval.models.huggingface import HFLM
    from transformers import AutoModelForCausalLM

    from med42_utils.benchmarks.data import BENCHMARKS, load_benchmark
    from med42_utils.benchmarks.run import evaluate
    from med42_utils.chat import SYSTEM_PROMPT
    from med42_utils.params import load_params

    tok = copy.deepcopy(llama3)
    tok.chat_template = _llama3_published_template()
    lm = HFLM(pretrained=AutoModelForCausalLM.from_pretrained(tiny_model_path), tokenizer=tok, batch_size=1)
    seen = []

    def record(requests, disable_tqdm=False):
        for r in requests:
            ctx, cont = r.args
            seen.append((ctx, cont, *lm._encode_pair(ctx, cont)))
        return [(-1.0, False)] * len(requests)

    lm.loglikelihood = record
    p = load_params("8b", {"eval.limit": 2, "eval.data_source": "bundled"})  # 8b's framing, the bundled rows
    assert p.eval.apply_chat_template and p.eval.system_prompt
    tasks = [b.task for b in BENCHMARKS.values()][:3]
    out = evaluate(p, lm, tasks, log_samples=True)
    assert seen and set(out["samples"]) == set(tasks)
    queries = {d["query"]: d for t in tasks for d in load_benchmark(t, "bundled").docs}
    for ctx, cont, ctx_ids, cont_ids in seen:
        head = f"<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n{SYSTEM_PROMPT}<|eot_id|>"
        assert ctx.startswith(head + "<|start_header_id|>user<|end_header_id|>\n\n")
        assert ctx.endswith("<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
        query = ctx[len(head) + len("<|start_header_id|>user<|end_header_id|>\n\n"):-len(
            "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")]
        assert query in queries and cont in queries[query]["choices"]
        assert ctx_ids[:2] == [128000, 128006] and ctx_ids.count(128000) == 1  # one BOS, not two
        # lm-eval moves the context's trailing whitespace into the continuation (_encode_pair): the header's "\n\n"
        # (one token, 271) is scored with every option, the same for all of them; then the whole answer
        assert ctx_ids[-1] == 128007 and cont_ids[0] == 271 and tok.decode(cont_ids) == "\n\n" + cont
    # 00's budget assumes eval_tokens_per_row tokens scored per question; measured here on the bundled sample rows
    # (made-up questions of the published shape), so this is a projection from samples, not the benchmarks' figure
    from med42_utils.budget import CALIBRATION

    per_doc: dict[str, int] = {}
    for ctx, _, ctx_ids, cont_ids in seen:
        per_doc[ctx] = per_doc.get(ctx, 0) + len(ctx_ids) + len(cont_ids)
    mean = sum(per_doc.values()) / len(per_doc)
    print(f"\n05 with Llama 3: {mean:.0f} tokens scored per question on {len(per_doc)} bundled sample questions "
          f"(00's budget assumes {CALIBRATION['eval_tokens_per_row'].value:.0f}, {CALIBRATION['eval_tokens_per_row'].kind})")
    assert mean <= CALIBRATION["eval_tokens_per_row"].value


def test_02_tokenizes_with_the_base_tokenizer_at_8b(curated, llama3, tiny_model_path, monkeypatch):
    """02's chunk statistics at 8b come from the base model's tokenizer (Llama 3, loaded as the Hub would give it;
    only the download is replaced), not the tiny one: the counted tokens are Llama 3's."""
    import copy

    import transformers
    from transformers import AutoTokenizer

    from med42_utils.packing.pack import pack, packing_stats
    from med42_utils.packing.stage import load_tokenizer
    from med42_utils.params import load_params

    p = load_params("8b")
    hub = copy.deepcopy(llama3)
    hub.chat_template = _llama3_published_template()  # as Meta-Llama-3-8B-Instruct's tokenizer_config.json has it
    asked = []
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained",
                        lambda name, **kw: asked.append(name) or copy.deepcopy(hub))
    tok = load_tokenizer(p)
    assert asked == [p.model.base] and tok.pad_token_id == 128009  # Llama 3 naming: pad falls back to <|eot_id|>
    from med42_utils.packing.labels import tokenize_dataset

    tokenized, drops = tokenize_dataset(curated, tok)
    stats = packing_stats(tokenized, {"bfd": pack(tokenized, p.packing.max_length, "bfd")}, p.packing.max_length,
                          p.sft.micro_batch_size)
    def count(t, msgs):
        return len(t.apply_chat_template([dict(m) for m in msgs], tokenize=True, return_dict=True)["input_ids"])

    llama_total = sum(count(hub, msgs) for msgs in curated["messages"])
    monkeypatch.undo()
    tiny = AutoTokenizer.from_pretrained(tiny_model_path)
    tiny_total = sum(count(tiny, msgs) for msgs in curated["messages"])
    assert stats["tokens"] == llama_total < tiny_total
    print(f"\n02 at 8b: {stats['tokens']:,} Llama 3 tokens for {stats['samples']} conversations "
          f"(the tiny tokenizer: {tiny_total:,}); {stats['strategies']['bfd']['chunks']} bfd chunks of "
          f"{p.packing.max_length}")


def test_dpo_completions_keep_their_end_of_turn_when_it_is_the_pad(llama3, tmp_path):
    """04's preference pairs (conversational prompt/chosen/rejected) through TRL's own DPO tokenization and collator
    with Meta-Llama-3-Instruct's tokenizer, whose pad falls back to <|eot_id|>: each completion's closing
    <|eot_id|> is in the completion mask (it is trained on), the padding after it is not."""
    import copy
    from types import SimpleNamespace

    import datasets
    from trl import DPOConfig
    from trl.trainer.dpo_trainer import DataCollatorForPreference, DPOTrainer

    from med42_utils.models import ensure_pad_token

    tok = copy.deepcopy(llama3)
    tok.chat_template = _llama3_published_template()
    ensure_pad_token(tok)
    assert tok.pad_token_id == 128009
    prompt = [{"role": "system", "content": "You are a careful clinician."},
              {"role": "user", "content": "First test for crushing chest pain?"}]
    ds = datasets.Dataset.from_list([
        {"prompt": prompt, "chosen": [{"role": "assistant", "content": "A 12-lead ECG within ten minutes."}],
         "rejected": [{"role": "assistant", "content": "A chest X-ray."}]},
        {"prompt": prompt, "chosen": [{"role": "assistant", "content": "ECG."}],
         "rejected": [{"role": "assistant", "content": "Troponin first, then an ECG and a chest X-ray."}]},
    ])
    args = DPOConfig(output_dir=str(tmp_path), max_length=None, dataset_num_proc=None, report_to=[], use_cpu=True,
                     bf16=False)
    rows = list(DPOTrainer._prepare_dataset(SimpleNamespace(_tokenizer=tok), ds, tok, args, "train"))
    for r in rows:
        for key in ("chosen_ids", "rejected_ids"):
            assert r[key][-1] == 128009 and r[key].count(128009) == 1
    batch = DataCollatorForPreference(pad_token_id=tok.pad_token_id)(rows)
    for ids, mask, attn in zip(batch["input_ids"], batch["completion_mask"], batch["attention_mask"]):
        last = int(attn.sum()) - 1
        assert ids[last] == 128009 and mask[last] == 1  # the completion's own <|eot_id|>: trained on
        assert (mask[last + 1:] == 0).all() and (ids[last + 1:] == 128009).all()  # the padding: not
    assert any(int(a.sum()) < len(a) for a in batch["attention_mask"])  # the batch did pad
