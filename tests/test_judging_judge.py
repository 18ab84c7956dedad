"""Judge backends: the compare() API, retries and unparseable counting, the logprob judge, the
OpenAI-compatible backend against a local stub server (key from the environment, never leaked)."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from med42_utils.judging.judge import GenerativeJudge, LogprobJudge, OpenAIJudge, make_judge
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
