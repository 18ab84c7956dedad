"""Judge backends: the compare() API, retries and unparseable counting, the logprob judge, the
OpenAI-compatible backend against a local stub server (key from the environment, never leaked)."""
from __future__ import annotations

import json
import math
import sys
import threading
import time
import types
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import SimpleNamespace

import pytest
import torch

from med42_utils.chat import stop_ids
from med42_utils.judging.judge import (GenerativeJudge, LogprobJudge, OpenAIJudge, TransformersJudge, VllmJudge,
                                       _hf_sampling, _prompt_texts, make_judge)
from med42_utils.judging.types import Verdict

SAMPLING = {"temperature": 0.0, "top_k": 0, "top_p": 1.0, "max_new_tokens": 16}


class ScriptedJudge(GenerativeJudge):
    """Returns scripted texts in order; records every conversation it was asked."""

    backend = "scripted"

    def __init__(self, texts, max_retries=1):
        super().__init__("script", max_retries)
        self.texts, self.seen = list(texts), []

    def generate(self, conversations):
        self.seen.extend(conversations)
        out = []
        for _ in conversations:
            t = self.texts.pop(0)
            if isinstance(t, Exception):
                raise t
            out.append(t)
        return out


def test_compare_returns_verdict_with_raw_text():
    j = ScriptedJudge(["Feedback: fine. [RESULT] B"])
    v = j.compare("Q?", "a", "b")
    assert isinstance(v, Verdict) and v.winner == "B" and v.raw.endswith("[RESULT] B") and v.attempts == 1
    assert "###Response A:\na" in j.seen[0][1]["content"]
    assert j.name == "scripted:script"


def test_retries_only_the_unparseable_and_records_failures():
    j = ScriptedJudge(["[RESULT] A", "no verdict here", "[RESULT] maybe", "[RESULT] B", "still nothing"],
                      max_retries=1)
    vs = j.compare_many([("q1", "a", "b"), ("q2", "a", "b"), ("q3", "a", "b", "ref")])
    assert [v.winner for v in vs] == ["A", "B", None]
    assert [v.attempts for v in vs] == [1, 2, 2]
    assert "no [RESULT]" in vs[2].reason and vs[2].raw == "still nothing"
    assert len(j.seen) == 5  # 3 first asks + 2 retries
    assert "###Reference Answer:\nref" in j.seen[2][1]["content"]


def test_ties_allowed_are_kept_first_time_never_unparseable():
    j = ScriptedJudge(["Both equally good. [RESULT] Tie", "[RESULT] A"], max_retries=1)
    j.allow_ties = True
    vs = j.compare_many([("q1", "a", "b"), ("q2", "a", "b")])
    assert [v.winner for v in vs] == ["tie", "A"] and [v.attempts for v in vs] == [1, 1]
    assert vs[0].reason is None and vs[0].parsed
    assert "A, B or Tie" in j.seen[0][1]["content"] and j.name == "scripted:script+ties"


def test_ties_off_asks_again_and_keeps_a_tie_the_judge_insists_on():
    j = ScriptedJudge(["[RESULT] tie", "[RESULT] draw", "[RESULT] B", "[RESULT] TIE"], max_retries=1)
    assert not j.allow_ties and j.name == "scripted:script"
    vs = j.compare_many([("q1", "a", "b"), ("q2", "a", "b")])
    assert [v.winner for v in vs] == ["B", "tie"]  # re-asked both; q2's judge still said tie: kept, not dropped
    assert [v.attempts for v in vs] == [2, 2] and vs[1].reason is None
    prompt = j.seen[0][1]["content"]
    assert "[RESULT] (A or B)" in prompt and "Tie" not in prompt


def test_make_judge_passes_allow_ties(tiny_params, stub_server, monkeypatch):
    base, stub = stub_server
    p = tiny_params.model_copy(deep=True)
    p.judge.backend, p.judge.model, p.judge.api_base, p.judge.api_key_env = "openai", "m", base, None
    for allow in (True, False):
        p.judge.allow_ties = allow
        j = make_judge(p)
        stub.replies = [(200, "[RESULT] Tie"), (200, "[RESULT] B")]
        v = j.compare("q", "a", "b")
        assert j.allow_ties is allow and v.winner == ("tie" if allow else "B")
        sent = stub.seen[-1][2]["messages"][1]["content"] if allow else stub.seen[-2][2]["messages"][1]["content"]
        assert ("A, B or Tie" in sent) is allow
        stub.seen.clear()


def test_backend_exception_is_a_failed_attempt_not_a_crash():
    j = ScriptedJudge([RuntimeError("server down"), "[RESULT] A"], max_retries=1)
    assert j.compare("q", "a", "b").winner == "A"
    j = ScriptedJudge([RuntimeError("server down")], max_retries=0)
    v = j.compare("q", "a", "b")
    assert v.winner is None and "server down" in v.reason


def test_logprob_judge_always_decides(tiny_params):
    p = tiny_params.model_copy(deep=True)
    p.judge.backend, p.judge.allow_ties = "logprob", False
    judge = make_judge(p)
    assert isinstance(judge, LogprobJudge) and judge.name == "logprob:tiny"
    items = [("What causes anemia?", "Iron deficiency.", "Blood loss or low iron."),
             ("What causes anemia?", "Blood loss or low iron.", "Iron deficiency.")]
    vs = judge.compare_many(items)
    assert all(v.winner in ("A", "B") for v in vs)
    for v in vs:
        assert v.winner == ("A" if v.logprobs["A"] > v.logprobs["B"] else "B")
    one = judge.compare(*items[0])
    assert one.logprobs["A"] == pytest.approx(vs[0].logprobs["A"], abs=1e-4)  # batching does not change scores


class _Stub(BaseHTTPRequestHandler):
    replies: list = []
    seen: list = []

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append((self.path, self.headers.get("Authorization"), body))
        code, text = type(self).replies.pop(0)
        payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]}).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *a):
        pass


@pytest.fixture
def stub_server():
    _Stub.replies, _Stub.seen = [], []
    srv = HTTPServer(("127.0.0.1", 0), _Stub)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1", _Stub
    srv.shutdown()


def test_openai_backend_against_local_stub(stub_server, monkeypatch):
    base, stub = stub_server
    monkeypatch.setenv("MED42_TEST_JUDGE_KEY", "sk-secret-123")
    stub.replies = [(500, ""), (200, "Feedback: B is safer. [RESULT] B"), (200, "I refuse"), (200, "[RESULT] A")]
    j = OpenAIJudge("prometheus", base, "MED42_TEST_JUDGE_KEY", SAMPLING, max_retries=1, backoff=0.0)
    v1 = j.compare("Q?", "a", "b")
    v2 = j.compare("Q?", "b", "a")
    assert v1.winner == "B" and v2.winner == "A" and v2.attempts == 2
    path, auth, body = stub.seen[0]
    assert path == "/v1/chat/completions" and auth == "Bearer sk-secret-123"
    assert body["model"] == "prometheus" and body["messages"][0]["role"] == "system"
    assert body["temperature"] == 0.0 and body["max_tokens"] == 16
    assert "sk-secret" not in repr(j) and "sk-secret" not in json.dumps(v1.__dict__, default=str)


def test_openai_endpoint_refusing_a_system_turn_gets_it_in_the_user_turn(stub_server):
    """A server rendering Mixtral's template answers a system turn with HTTP 400; the judge asks again with the
    system text first in the user turn, and keeps doing so. Prometheus' sampling goes in the body."""
    from med42_utils.judging.prometheus import OFFICIAL_SAMPLING, REL_SYSTEM_PROMPT

    base, stub = stub_server
    stub.replies = [(400, ""), (200, "Feedback. [RESULT: B]"), (200, "[RESULT] A")]
    sampling = {**OFFICIAL_SAMPLING, "top_k": 0}
    j = OpenAIJudge("prometheus", base, None, sampling, max_retries=0, backoff=0.0, style="prometheus2")
    assert j.compare("Q?", "a", "b").winner == "B" and j.compare("Q?", "a", "b").winner == "A"
    first, merged, later = (body for _, _, body in stub.seen)
    assert [m["role"] for m in first["messages"]] == ["system", "user"]
    for body in (merged, later):
        assert [m["role"] for m in body["messages"]] == ["user"]
        assert body["messages"][0]["content"].startswith(REL_SYSTEM_PROMPT + "\n###Task Description:")
        assert body["repetition_penalty"] == 1.03 and body["top_p"] == 0.9 and body["max_tokens"] == 1024
    assert first["repetition_penalty"] == 1.03


def test_openai_backend_missing_key_names_the_variable(monkeypatch):
    monkeypatch.delenv("MED42_NOPE_KEY", raising=False)
    with pytest.raises(ValueError, match="MED42_NOPE_KEY"):
        OpenAIJudge("m", "http://127.0.0.1:1/v1", "MED42_NOPE_KEY", SAMPLING)


def test_openai_unreachable_gives_unparseable_verdict(monkeypatch):
    j = OpenAIJudge("m", "http://127.0.0.1:9/v1", None, SAMPLING, max_retries=0, http_retries=0, timeout=2)
    v = j.compare("q", "a", "b")
    assert v.winner is None and "cannot reach" in v.raw


def test_make_judge_openai_from_params(tiny_params, stub_server, monkeypatch):
    base, stub = stub_server
    monkeypatch.setenv("MED42_TEST_JUDGE_KEY", "k")
    p = tiny_params.model_copy(deep=True)
    p.judge.backend, p.judge.model, p.judge.api_base, p.judge.api_key_env = "openai", "m", base, "MED42_TEST_JUDGE_KEY"
    j = make_judge(p)
    stub.replies = [(200, "[RESULT] A")]
    assert isinstance(j, OpenAIJudge) and j.compare("q", "a", "b").winner == "A"
    assert stub.seen[0][1] == "Bearer k"  # the key from the variable judge.api_key_env names


def test_transformers_judge_generates_and_never_crashes(tiny_params):
    p = tiny_params.model_copy(deep=True)
    p.judge.backend, p.judge.allow_ties = "transformers", True
    p.judge.judge_sampling.max_new_tokens = 6
    judge = make_judge(p)
    assert judge.name == "transformers:tiny+ties"
    vs = judge.compare_many([("What causes anemia?", "Iron deficiency.", "Blood loss."), ("Q?", "a", "b", "ref")])
    for v in vs:  # a random tiny model rarely writes "[RESULT] A"; either way the verdict is well-formed
        assert isinstance(v.raw, str) and v.attempts in (1, 2)
        assert (v.winner in ("A", "B", "tie")) == (v.reason is None)
        assert v.winner is not None or v.attempts == p.judge.max_retries + 1


# --- found by mutation testing (docs/testing.md) ---

@pytest.fixture(scope="module")
def tiny_tok(tiny_model_path):
    """The tiny model's own tokenizer (Llama 3 chat template, pad id 4, '<|eot_id|>' = eos = 9, 'A' = 43, 'B' = 44)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_path)


def test_a_verdict_keeps_the_feedback_and_a_failed_call_leaves_no_raw_text_and_names_the_error():
    j = ScriptedJudge(["Feedback: B names the dose. [RESULT] B"])
    v = j.compare("q", "a", "b")
    assert (v.winner, v.raw, v.feedback, v.reason) == ("B", "Feedback: B names the dose. [RESULT] B", "B names the dose.", None)
    j = ScriptedJudge([ValueError("bad gateway")], max_retries=0)
    v = j.compare("q", "a", "b")
    assert (v.winner, v.raw, v.feedback, v.attempts) == (None, "", "", 1)
    assert v.reason == "backend error: ValueError: bad gateway"


def test_a_generative_judge_asks_once_more_by_default_and_nothing_for_no_items():
    class Defaults(GenerativeJudge):
        backend = "defaults"

        def __init__(self):
            super().__init__("d")
            self.asked = 0

        def generate(self, conversations):
            self.asked += len(conversations)
            return ["no verdict"] * len(conversations)

    j = Defaults()
    v = j.compare("q", "a", "b")
    assert (j.asked, v.attempts, v.winner) == (2, 2, None)
    assert j.compare_many([]) == [] and j.asked == 2


def test_stop_ids_are_the_eos_and_eot_tokens_skipping_an_unknown_or_missing_one():
    def tok(eos, eot, unk=0):
        return SimpleNamespace(eos_token_id=eos, unk_token_id=unk,
                               convert_tokens_to_ids=lambda t: eot if t == "<|eot_id|>" else unk)

    assert sorted(stop_ids(tok(2, 7))) == [2, 7]
    assert stop_ids(tok(2, 0)) == [2]  # '<|eot_id|>' not in the vocabulary: the unknown token's id
    assert stop_ids(tok(2, None, unk=None)) == [2]  # a tokenizer without an unknown token answers None
    assert stop_ids(tok(None, 7)) == [7]  # no eos token: only the end-of-turn one
    assert stop_ids(tok(7, 7)) == [7]


def test_prompt_texts_end_with_the_assistant_header_or_join_the_turns_without_a_template(tiny_tok):
    conv = [{"role": "system", "content": "Be fair."}, {"role": "user", "content": "Judge this."}]
    (text,) = _prompt_texts(tiny_tok, [conv])
    assert text == ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe fair.<|eot_id|>"
                    "<|start_header_id|>user<|end_header_id|>\n\nJudge this.<|eot_id|>"
                    "<|start_header_id|>assistant<|end_header_id|>\n\n")
    assert _prompt_texts(tiny_tok, [conv], suffix="[RESULT] ") == [text + "[RESULT] "]
    bare = SimpleNamespace(chat_template=None)
    assert _prompt_texts(bare, [conv, conv[1:]]) == ["Be fair.\nJudge this.", "Judge this."]
    assert _prompt_texts(bare, [conv], suffix="!") == ["Be fair.\nJudge this.!"]
    assert _prompt_texts(object(), [conv]) == ["Be fair.\nJudge this."]  # a tokenizer with no chat_template at all


class ScoringLM:
    """A stand-in causal LM: the last position's logits are 0 but for 'A' and 'B' (a scripted pair per row);
    records every batch it is given."""

    def __init__(self, tok, scores, max_position_embeddings=1024):
        self.config = SimpleNamespace(max_position_embeddings=max_position_embeddings)
        if max_position_embeddings is None:
            self.config = SimpleNamespace()
        self.device = torch.device("cpu")
        self.vocab = len(tok)
        self.a, self.b = tok.convert_tokens_to_ids("A"), tok.convert_tokens_to_ids("B")
        self.scores, self.calls = list(scores), []

    def __call__(self, input_ids, attention_mask):
        self.calls.append((input_ids.clone(), attention_mask.clone()))
        logits = torch.zeros(*input_ids.shape, self.vocab)
        for row in range(input_ids.shape[0]):
            logits[row, -1, self.a], logits[row, -1, self.b] = self.scores.pop(0)
        return SimpleNamespace(logits=logits)


def test_logprob_judge_scores_each_prompt_in_batches_left_padded_after_the_result_marker(tiny_tok):
    lm = ScoringLM(tiny_tok, [(2.0, 0.0), (0.0, 1.5), (-1.0, 3.0)])
    j = LogprobJudge(lm, tiny_tok, "fake", batch_size=2)
    items = [("Q1?", "a", "b"), ("Which drug lowers blood pressure fastest?", "a", "b"), ("Q3?", "a", "b", "ref")]
    vs = j.compare_many(items)
    assert [v.winner for v in vs] == ["A", "B", "B"] and [c[0].shape[0] for c in lm.calls] == [2, 1]
    z = math.log(math.exp(2.0) + 1 + (lm.vocab - 2))  # log-sum-exp of the row: A at 2, B and the rest at 0
    assert vs[0].logprobs == pytest.approx({"A": 2.0 - z, "B": -z})
    assert (vs[0].raw, vs[0].feedback, vs[0].reason, vs[0].attempts) == ("[RESULT] A", "", None, 1)
    assert vs[1].raw == "[RESULT] B"
    (ids, mask), (ids3, _) = lm.calls
    for row, item in enumerate(items[:2]):
        want = tiny_tok(_prompt_texts(tiny_tok, [j.messages(item + (None,))], suffix="[RESULT] ")[0],
                        add_special_tokens=False).input_ids
        assert want[0] == tiny_tok.bos_token_id and tiny_tok.decode(want).endswith("<|end_header_id|>\n\n[RESULT] ")
        n = len(want)
        assert ids[row, -n:].tolist() == want and mask[row, -n:].tolist() == [1] * n  # the prompt ends each row
        assert ids[row, :-n].tolist() == [tiny_tok.pad_token_id] * (ids.shape[1] - n)  # padded on the left
        assert mask[row, :-n].tolist() == [0] * (ids.shape[1] - n)
    assert mask[0].sum() < mask[1].sum()  # the first row was the one padded
    want3 = tiny_tok(_prompt_texts(tiny_tok, [j.messages(items[2])], suffix="[RESULT] ")[0], add_special_tokens=False)
    assert ids3.tolist() == [want3.input_ids]  # the last batch, one prompt (with its reference), unpadded


def test_logprob_judge_equal_log_probabilities_is_a_tie_when_allowed_else_no_verdict(tiny_tok):
    tie = LogprobJudge(ScoringLM(tiny_tok, [(1.0, 1.0)]), tiny_tok, "fake", allow_ties=True).compare("q", "a", "b")
    assert (tie.winner, tie.raw, tie.reason) == ("tie", "[RESULT] tie", None)
    none = LogprobJudge(ScoringLM(tiny_tok, [(1.0, 1.0)]), tiny_tok, "fake").compare("q", "a", "b")
    assert (none.winner, none.raw, none.reason) == (None, "equal log-probabilities",
                                                   "equal log-probabilities and ties are off")
    assert none.logprobs["A"] == none.logprobs["B"]


def test_logprob_judge_cuts_long_prompts_from_the_left_to_the_models_context(tiny_tok):
    long = ("Q?", "word " * 1500, "b")  # ~4500 tokens of response A
    full = tiny_tok(_prompt_texts(tiny_tok, [LogprobJudge(ScoringLM(tiny_tok, []), tiny_tok, "m").messages(long + (None,))],
                                  suffix="[RESULT] ")[0], add_special_tokens=False).input_ids
    assert len(full) > 4200
    for context, given, kept in ((64, None, 64), (64, 40, 40), (None, None, 4096)):  # no max_position_embeddings: 4096
        lm = ScoringLM(tiny_tok, [(0.0, 1.0)], max_position_embeddings=context)
        assert LogprobJudge(lm, tiny_tok, "m", max_length=given).compare(*long).winner == "B"
        (ids, mask), = lm.calls
        assert ids[0].tolist() == full[-kept:] and int(mask.sum()) == kept  # the rubric's end and '[RESULT] ' kept


def test_logprob_judge_refuses_a_tokenizer_that_splits_the_labels(tiny_tok):
    class Splitting:
        def encode(self, text, add_special_tokens=True):
            return [1, 2] if text == "B" else [3]

    with pytest.raises(ValueError, match=r"splits 'B' into 2 tokens; use a tokenizer with single-token 'A'/'B' "
                                         r"or backend 'transformers'"):
        LogprobJudge(ScoringLM(tiny_tok, []), Splitting(), "m")


class GeneratingLM:
    """A stand-in for model.generate: appends the scripted replies (then <|eot_id|>, then padding) to the prompt
    ids; records each call's inputs and generation arguments."""

    def __init__(self, tok, replies):
        self.tok, self.replies, self.calls = tok, list(replies), []
        self.device = torch.device("cpu")

    def generate(self, input_ids, attention_mask, **kw):
        self.calls.append({"input_ids": input_ids.clone(), "attention_mask": attention_mask.clone(), **kw})
        new = [self.tok.encode(self.replies.pop(0), add_special_tokens=False) + [9] for _ in range(len(input_ids))]
        width = max(map(len, new))
        new = torch.tensor([n + [self.tok.pad_token_id] * (width - len(n)) for n in new])
        prompt = input_ids if input_ids.device.type == "cpu" else torch.zeros(input_ids.shape, dtype=torch.long)
        return torch.cat([prompt, new], dim=1)


def test_transformers_judge_decodes_only_the_new_tokens_in_batches_with_the_stop_tokens(tiny_tok):
    lm = GeneratingLM(tiny_tok, ["Feedback: ok. [RESULT] A", "[RESULT] B", "[RESULT] Tie"])
    j = TransformersJudge(lm, tiny_tok, "fake", SAMPLING, max_retries=0, batch_size=2, allow_ties=True)
    vs = j.compare_many([("Q1?", "a", "b"), ("A much longer second question?", "a", "b"), ("Q3?", "a", "b")])
    assert [v.raw for v in vs] == ["Feedback: ok. [RESULT] A", "[RESULT] B", "[RESULT] Tie"]  # no prompt, no specials
    assert [v.winner for v in vs] == ["A", "B", "tie"] and [len(c["input_ids"]) for c in lm.calls] == [2, 1]
    first = lm.calls[0]
    assert first["eos_token_id"] == [9] and first["pad_token_id"] == tiny_tok.pad_token_id
    assert {k: first[k] for k in ("max_new_tokens", "do_sample")} == {"max_new_tokens": 16, "do_sample": False}
    assert first["attention_mask"][0, 0] == 0 and first["attention_mask"][0, -1] == 1  # left padding
    want = tiny_tok(_prompt_texts(tiny_tok, [j.messages(("Q1?", "a", "b", None))])[0], add_special_tokens=False).input_ids
    assert first["input_ids"][0, -len(want):].tolist() == want and want[0] == tiny_tok.bos_token_id
    assert int(first["attention_mask"][0].sum()) == len(want)  # the template's own <|begin_of_text|>, no second one


def test_hf_sampling_greedy_sends_no_sampling_knobs_and_a_repetition_penalty_only_when_set():
    assert _hf_sampling(SAMPLING) == {"max_new_tokens": 16, "do_sample": False}
    card = {"temperature": 1.0, "top_k": 0, "top_p": 0.9, "max_new_tokens": 1024, "repetition_penalty": 1.03}
    assert _hf_sampling(card) == {"max_new_tokens": 1024, "do_sample": True, "temperature": 1.0, "top_k": 0,
                                  "top_p": 0.9, "repetition_penalty": 1.03}
    assert _hf_sampling({**card, "repetition_penalty": 1.0}) == {"max_new_tokens": 1024, "do_sample": True,
                                                                 "temperature": 1.0, "top_k": 0, "top_p": 0.9}
    assert _hf_sampling({**SAMPLING, "temperature": 0.7, "top_k": 50}) == {
        "max_new_tokens": 16, "do_sample": True, "temperature": 0.7, "top_k": 50, "top_p": 1.0}


def _fake_vllm(monkeypatch, tok=None, replies=(), fail=None):
    """vllm stood in by a module with its LLM / SamplingParams API (LLM.chat -> outputs[0].text); `made` records.
    A fake because vLLM cannot install or run here (no GPU, no environment for it); the calls it accepts were read
    against vLLM's documentation of LLM(...), SamplingParams(...) and LLM.chat(...)."""
    made, replies = {}, list(replies)

    class SamplingParams:
        def __init__(self, **kw):
            made["sampling"] = kw

    class LLM:
        def __init__(self, **kw):
            if fail is not None:
                raise fail
            made["llm"] = kw

        def get_tokenizer(self):
            return tok

        def chat(self, messages, sampling_params, **kw):
            made.setdefault("chats", []).append((messages, sampling_params, kw))
            return [SimpleNamespace(outputs=[SimpleNamespace(text=replies.pop(0)), SimpleNamespace(text="2nd")])
                    for _ in messages]

    mod = types.ModuleType("vllm")
    mod.LLM, mod.SamplingParams = LLM, SamplingParams
    monkeypatch.setitem(sys.modules, "vllm", mod)
    return made


def test_vllm_judge_builds_engine_and_sampling_from_params_and_fits_roles_to_the_served_template(monkeypatch, tiny_tok):
    from med42_utils.judging.prometheus import OFFICIAL_SAMPLING, REL_SYSTEM_PROMPT

    made = _fake_vllm(monkeypatch, tiny_tok, ["Feedback: B. [RESULT] B"])
    j = VllmJudge("prometheus-eval/prometheus-8x7b-v2.0", {**OFFICIAL_SAMPLING, "top_k": 0}, max_retries=0,
                  trust_remote_code=True, style="prometheus2", tensor_parallel_size=2)
    assert made["llm"] == {"model": "prometheus-eval/prometheus-8x7b-v2.0", "trust_remote_code": True,
                           "tensor_parallel_size": 2}
    assert made["sampling"] == {"temperature": 1.0, "top_p": 0.9, "top_k": -1, "max_tokens": 1024,
                                "repetition_penalty": 1.03}  # vLLM spells "no top-k" -1
    v = j.compare("Q?", "a", "b")
    assert (v.winner, v.raw, v.feedback) == ("B", "Feedback: B. [RESULT] B", "B.")
    (messages, sp, kw), = made["chats"]
    assert kw == {"use_tqdm": False} and sp is j.sp
    assert [m["role"] for m in messages[0]] == ["system", "user"]  # Llama 3's template takes a system turn
    assert messages[0][0]["content"] == REL_SYSTEM_PROMPT
    assert j.name == "vllm:prometheus-eval/prometheus-8x7b-v2.0+prometheus2" and j.max_retries == 0

    made = _fake_vllm(monkeypatch, SimpleNamespace(apply_chat_template=_refuses_system),
                      ["no verdict", "[RESULT] tie", "[RESULT] A"])
    j = VllmJudge("m", {**SAMPLING, "top_k": 20})  # the defaults: no remote code, one more ask, ties off
    assert made["llm"] == {"model": "m", "trust_remote_code": False} and j.name == "vllm:m"
    assert made["sampling"] == {"temperature": 0.0, "top_p": 1.0, "top_k": 20, "max_tokens": 16,
                                "repetition_penalty": 1.0}
    v = j.compare("Q?", "a", "b")
    assert (v.winner, v.attempts) == ("tie", 2) and len(made["chats"]) == 2  # a tie kept after the one retry
    (messages, _, _), _ = made["chats"]
    assert [m["role"] for m in messages[0]] == ["user"]  # Mixtral's template refuses one: merged into the user turn


def _refuses_system(messages, **kw):
    if any(m["role"] == "system" for m in messages):
        raise ValueError("Conversation roles must alternate user/assistant/user/assistant/...")
    return "".join(m["content"] for m in messages)


def test_vllm_judge_that_cannot_reach_the_hub_names_the_judge_model(monkeypatch):
    from med42_utils.hub import HubUnreachableError

    _fake_vllm(monkeypatch, fail=OSError("We couldn't connect to 'https://huggingface.co' to load the files"))
    with pytest.raises(HubUnreachableError, match="judge model 'prometheus-eval/prometheus-8x7b-v2.0' is not in"):
        VllmJudge("prometheus-eval/prometheus-8x7b-v2.0", SAMPLING)


def test_openai_judge_retries_a_failing_server_three_times_with_doubling_waits_then_records_the_failure(
        stub_server, monkeypatch):
    import med42_utils.chat_client as chat_client

    base, stub = stub_server
    waits, timeouts, urlopen = [], [], chat_client.urllib.request.urlopen
    monkeypatch.setattr(chat_client, "time", SimpleNamespace(sleep=waits.append))
    monkeypatch.setattr(chat_client.urllib.request, "urlopen",
                        lambda req, timeout: timeouts.append(timeout) or urlopen(req, timeout=timeout))
    stub.replies = [(500, "")] * 4
    v = OpenAIJudge("m", base, None, SAMPLING, max_retries=0).compare("q", "a", "b")
    assert len(stub.seen) == 4 and waits == [1.0, 2.0, 4.0] and timeouts == [120.0] * 4  # the judge's defaults
    assert v.winner is None and v.raw.startswith(f"<request failed: HTTP 500 from {base}") and "(after 4 tries)" in v.raw
    assert v.reason == "no [RESULT] marker"


def test_openai_judge_resends_a_failed_request_http_retries_times_after_its_backoff(stub_server, monkeypatch):
    import med42_utils.chat_client as chat_client

    base, stub = stub_server
    waits = []
    monkeypatch.setattr(chat_client, "time", SimpleNamespace(sleep=waits.append))
    stub.replies = [(503, ""), (503, ""), (200, "[RESULT] A")]
    v = OpenAIJudge("m", base, None, SAMPLING, max_retries=0, http_retries=1, backoff=0.25).compare("q", "a", "b")
    assert v.winner is None and "HTTP 503" in v.raw and "(after 2 tries)" in v.raw  # one re-send, not chat's default 3
    assert len(stub.seen) == 2 and waits == [0.25]


def test_openai_judge_asks_for_the_served_name_without_a_key_or_repetition_penalty_and_shows_no_slash(stub_server):
    base, stub = stub_server
    stub.replies = [(200, "[RESULT] A"), (200, "[RESULT] B")]
    j = OpenAIJudge("prometheus", base + "/", None, SAMPLING, max_retries=0, served_name="judge-0")
    assert j.compare("q", "a", "b").winner == "A"
    j.sampling = {**SAMPLING, "repetition_penalty": 1.0}
    assert j.compare("q", "a", "b").winner == "B"
    for path, auth, body in stub.seen:
        assert path == "/v1/chat/completions" and auth is None and body["model"] == "judge-0"
        assert "repetition_penalty" not in body  # 1.0 (or none given) is not sent: not every server takes it
    assert repr(j) == f"OpenAIJudge(model='prometheus', api_base='{base}', api_key_env=None)"
    assert repr(OpenAIJudge("m", "http://judge.example/X/", "", SAMPLING)) == (
        "OpenAIJudge(model='m', api_base='http://judge.example/X', api_key_env='')")  # only the slash is cut
    assert j.name == "openai:prometheus"  # the cache key names the model, not the server's alias


def test_openai_judge_refuses_a_missing_api_base_and_tells_how_to_set_the_key(monkeypatch):
    with pytest.raises(ValueError, match=r"^judge.backend 'openai' needs judge.api_base \(e.g. http://127.0.0.1:8000/v1\)$"):
        OpenAIJudge("m", "", None, SAMPLING)
    monkeypatch.delenv("MED42_NOPE_KEY", raising=False)
    with pytest.raises(ValueError, match=r"'MED42_NOPE_KEY' but that environment variable is not set; "
                                         r"export MED42_NOPE_KEY=<your key> \(never put the key in params\)"):
        OpenAIJudge("m", "http://127.0.0.1:1/v1", "MED42_NOPE_KEY", SAMPLING)


def test_openai_judge_runs_its_start_hook_once_before_the_first_request(stub_server):
    base, stub = stub_server
    stub.replies = [(200, "[RESULT] A"), (200, "[RESULT] B")]
    j = OpenAIJudge("m", base, None, SAMPLING, max_retries=0)
    started = []
    j.before_first_request = lambda: started.append(len(stub.seen))
    assert j.compare("q", "a", "b").winner == "A" and j.compare("q", "a", "b").winner == "B"
    assert started == [0] and j.before_first_request is None  # before any request, and only the once
    stub.replies = [(200, "no verdict"), (200, "still none"), (200, "[RESULT] A")]
    v = OpenAIJudge("m", base, None, SAMPLING).compare("q", "a", "b")
    assert (v.winner, v.attempts, len(stub.seen)) == (None, 2, 4)  # by default one more ask, then recorded as failed


def test_openai_judge_keeps_at_most_concurrency_requests_in_flight_answers_in_order(monkeypatch):
    import med42_utils.chat_client as chat_client

    lock, state = threading.Lock(), {"now": 0, "most": 0, "together": None}

    def chat(api_base, model, conv, sampling, **kw):
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        if state["together"] is not None:  # the first requests wait until that many are in flight (or fail)
            state["together"].wait()
        time.sleep(0.02)
        with lock:
            state["now"] -= 1
        return f"[RESULT] {conv[1]['content'].split('###Response A:')[1].split()[0]}", 0

    monkeypatch.setattr(chat_client, "chat", chat)
    items = [("q", x, "b") for x in ("A", "B", "A", "B")]
    for concurrency, most in ((None, 1), (0, 1), (1, 1), (3, 3)):  # one at a time unless asked
        state["most"] = 0
        state["together"] = threading.Barrier(3, timeout=5) if concurrency == 3 else None
        kw = {} if concurrency is None else {"concurrency": concurrency}
        j = OpenAIJudge("m", "http://127.0.0.1:1/v1", None, SAMPLING, max_retries=0, **kw)
        if state["together"] is not None:
            items = items[:3]
        assert [v.winner for v in j.compare_many(items)] == ["A", "B", "A", "B"][:len(items)]
        assert state["most"] == most


def test_openai_judge_merges_the_system_turn_once_only_and_passes_other_http_errors_on(stub_server):
    base, stub = stub_server
    stub.replies = [(400, ""), (400, "")]  # refuses the system turn, then the merged prompt too: no third ask
    j = OpenAIJudge("m", base, None, SAMPLING, max_retries=0, http_retries=0)
    v = j.compare("q", "a", "b")
    assert v.raw.startswith(f"<request failed: HTTP 400 from {base}") and j.merge_system
    assert [[m["role"] for m in body["messages"]] for _, _, body in stub.seen] == [["system", "user"], ["user"]]
    for reply, user_only in (((404, ""), False), ((400, ""), True)):  # not a 400; a 400 with no system turn to move
        stub.seen.clear()
        stub.replies = [reply]
        j = OpenAIJudge("m", base, None, SAMPLING, max_retries=0, http_retries=0)
        conv = [{"role": "user", "content": "x"}] if user_only else j.messages(("q", "a", "b", None))
        (raw,) = j.generate([conv])
        assert raw.startswith(f"<request failed: HTTP {reply[0]} from {base}") and not j.merge_system
        assert len(stub.seen) == 1


def test_make_judge_reference_backend_from_params_and_its_missing_field_named(tiny_params):
    from med42_utils.judging.reference import ReferenceJudge

    p = tiny_params.model_copy(deep=True)
    j = make_judge(p)
    assert isinstance(j, ReferenceJudge) and j.name == "reference:char3_f1@0.02+ties"  # tiny: char 3-grams, ties within 0.02
    p.judge.reference_metric, p.judge.tie_margin, p.judge.allow_ties = "token_f1", 0.5, True
    assert make_judge(p).name == "reference:token_f1@0.5+ties"
    p.judge.allow_ties = False
    assert make_judge(p).name == "reference:token_f1" and not make_judge(p).allow_ties
    p.judge.reference_field = None
    with pytest.raises(ValueError, match=r"judge.backend 'reference' compares answers with each question's reference "
                                         r"answer: set judge.reference_field \(the bundled questions use 'reference'\)"):
        make_judge(p)


def test_make_judge_openai_with_a_server_to_start_wants_an_api_base_or_serving_judge(tiny_params, stub_server):
    p = tiny_params.model_copy(deep=True)
    p.judge.backend, p.judge.model, p.judge.server = "openai", "m", "vllm"
    with pytest.raises(ValueError, match=r"judge.server 'vllm' starts the judge's server inside a block "
                                         r"\(med42_utils.serve.serving_judge, as 06's job does: python -m "
                                         r"med42_utils.judging.job\); make_judge talks to a running server: give "
                                         r"judge.api_base, or use serving_judge"):
        make_judge(p)
    p.judge.server = "none"  # no server to start: the judge itself asks for the endpoint
    with pytest.raises(ValueError, match=r"^judge.backend 'openai' needs judge.api_base"):
        make_judge(p)
    base, stub = stub_server
    p.judge.api_base, p.judge.prompt, p.judge.max_retries, p.judge.allow_ties = base, "prometheus2", 2, False
    j = make_judge(p)  # a server already running at api_base
    assert j.name == "openai:m+prometheus2" and j.concurrency == p.judge.concurrency == 8
    stub.replies = [(200, "no verdict")] * 3
    v = j.compare("q", "a", "b")
    assert v.attempts == 3 and len(stub.seen) == 3  # judge.max_retries re-asks
    assert stub.seen[0][2]["top_p"] == 0.9 and stub.seen[0][2]["max_tokens"] == 64  # judge_sampling, not sampling


def test_make_judge_vllm_from_params(tiny_params, monkeypatch, tiny_tok):
    made = _fake_vllm(monkeypatch, tiny_tok, ["[RESULT] B"] * 2)
    p = tiny_params.model_copy(deep=True)
    p.judge.backend, p.judge.model, p.judge.prompt, p.judge.allow_ties = "vllm", "org/judge", "prometheus2", False
    p.judge.max_retries, p.model.trust_remote_code = 0, True
    j = make_judge(p)
    assert isinstance(j, VllmJudge) and j.name == "vllm:org/judge+prometheus2" and j.max_retries == 0
    assert made["llm"] == {"model": "org/judge", "trust_remote_code": True}
    assert made["sampling"] == {"temperature": 1.0, "top_p": 0.9, "top_k": -1, "max_tokens": 64, "repetition_penalty": 1.0}
    p.judge.allow_ties, p.judge.prompt = True, "course"
    assert make_judge(p).name == "vllm:org/judge+ties"


@pytest.mark.parametrize("backend,new", [("logprob", 1), ("transformers", 64)])
def test_make_judge_loads_the_local_judge_sized_for_its_batch(tiny_params, tiny_model_path, tiny_tok, monkeypatch,
                                                              backend, new):
    import med42_utils.inference as inference
    from med42_utils.estimates import JUDGE_PROMPT_TOKENS

    loads = []

    def load_for_inference(params, name, **kw):
        loads.append((name, kw))
        return ScoringLM(tiny_tok, [(0.0, 1.0)] * 4), tiny_tok, None

    monkeypatch.setattr(inference, "load_for_inference", load_for_inference)
    p = tiny_params.model_copy(deep=True)
    p.judge.backend, p.judge.model, p.judge.prompt, p.judge.allow_ties = backend, "org/judge", "prometheus2", False
    j = make_judge(p)
    assert loads == [("org/judge", {"what": "judge model", "kv_tokens": 4 * (JUDGE_PROMPT_TOKENS + new)})]
    assert j.name == f"{backend}:org/judge+prometheus2" and j.batch_size == 4
    j = make_judge(p, batch_size=2)
    assert loads[-1][1]["kv_tokens"] == 2 * (JUDGE_PROMPT_TOKENS + new) and j.batch_size == 2
    p.judge.model = "tiny"
    j = make_judge(p, tokenizer=tiny_tok)  # a tokenizer without its model: both loaded
    assert str(loads[-1][0]) == str(tiny_model_path)  # 'tiny' is the locally built tiny model
    assert j.model == "tiny" and len(loads) == 3
    p.judge.prompt, p.judge.allow_ties = "course", True
    assert make_judge(p).name == f"{backend}:tiny+ties"  # judge.allow_ties reaches the judge (its prompt, cache key)


def test_make_judge_transformers_reuses_a_loaded_model_with_params_sampling_and_batch(tiny_params, tiny_tok):
    p = tiny_params.model_copy(deep=True)
    p.judge.backend, p.judge.model, p.judge.max_retries, p.judge.allow_ties = "transformers", "org/judge", 0, False
    lm = GeneratingLM(tiny_tok, ["[RESULT] A", "no verdict", "[RESULT] A"])
    j = make_judge(p, model=lm, tokenizer=tiny_tok, batch_size=2)
    assert isinstance(j, TransformersJudge) and j.name == "transformers:org/judge"
    vs = j.compare_many([("q", "a", "b")] * 3)
    assert [v.winner for v in vs] == ["A", None, "A"] and [v.attempts for v in vs] == [1, 1, 1]  # max_retries 0
    assert [len(c["input_ids"]) for c in lm.calls] == [2, 1]
    assert {k: lm.calls[0][k] for k in ("max_new_tokens", "do_sample", "temperature", "top_k", "top_p")} == {
        "max_new_tokens": 64, "do_sample": True, "temperature": 1.0, "top_k": 0, "top_p": 0.9}  # tiny's judge_sampling


def test_local_judges_use_their_default_batch_retries_and_no_ties(tiny_tok):
    lm = ScoringLM(tiny_tok, [(1.0, 0.0)] * 5)
    j = LogprobJudge(lm, tiny_tok, "fake")
    assert [v.winner for v in j.compare_many([("q", "a", "b")] * 5)] == ["A"] * 5
    assert [len(ids) for ids, _ in lm.calls] == [4, 1]  # 4 prompts per forward pass
    lm = GeneratingLM(tiny_tok, ["[RESULT] A"] * 4 + ["[RESULT] Tie", "[RESULT] tie"])
    j = TransformersJudge(lm, tiny_tok, "fake", SAMPLING)
    vs = j.compare_many([("q", "a", "b")] * 5)
    assert [v.winner for v in vs] == ["A"] * 4 + ["tie"] and vs[4].attempts == 2  # the tie asked again once, kept
    assert [len(c["input_ids"]) for c in lm.calls] == [4, 1, 1] and j.name == "transformers:fake"


def test_a_judge_on_another_device_gets_its_inputs_there(tiny_tok):
    """'meta' stands in for a GPU: the prompts must be moved to the model's device, not left on the CPU."""
    lm = ScoringLM(tiny_tok, [(0.0, 1.0)])
    lm.device = torch.device("meta")
    assert LogprobJudge(lm, tiny_tok, "m").compare("q", "a", "b").winner == "B"
    assert {t.device.type for t in lm.calls[0]} == {"meta"}
    lm = GeneratingLM(tiny_tok, ["[RESULT] A"])
    lm.device = torch.device("meta")
    assert TransformersJudge(lm, tiny_tok, "m", SAMPLING).compare("q", "a", "b").winner == "A"
    assert {lm.calls[0][k].device.type for k in ("input_ids", "attention_mask")} == {"meta"}
