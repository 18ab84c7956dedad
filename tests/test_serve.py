"""med42_utils.serve: sizing, the vLLM command and environment (against the pinned release's own files), and the
server lifecycle against a REAL OpenAI-compatible server on CPU (`transformers serve` on the tiny model)."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from med42_utils import serve
from med42_utils.chat_client import ServerError, chat, chat_many
from med42_utils.estimates import LLAMA3_8B, LLAMA3_70B, MIXTRAL_8X7B, shape_for
from med42_utils.serve import (Server, free_port, parallel_sizes, port_in_use, transformers_command,
                               vllm_command)

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "tests" / "fixtures" / "vllm"
STUB = ROOT / "tests" / "stub_server.py"
KV = 8 * 4096  # 8 requests of 4096 tokens in flight


# ---- sizing (by the memory figures, no GPU) ----

@pytest.mark.parametrize("shape,gpus,tp,dp", [
    (LLAMA3_8B, 1, 1, 1), (LLAMA3_8B, 8, 1, 8),
    (LLAMA3_70B, 8, 4, 2), (MIXTRAL_8X7B, 8, 2, 4), (MIXTRAL_8X7B, 2, 2, 1),
])
def test_parallel_sizes_fit_weights_and_kv_cache(shape, gpus, tp, dp):
    p = parallel_sizes(shape, gpus, 80.0, KV)
    assert (p.tensor, p.data) == (tp, dp)
    assert p.tensor * p.per_gpu_gib >= p.need_gib > shape.weights_gib()  # the KV cache counts
    if p.tensor > 1:  # and no fewer GPUs would hold it
        assert (p.tensor // 2) * p.per_gpu_gib < p.need_gib


def test_parallel_sizes_refuses_what_cannot_fit_naming_the_fix():
    with pytest.raises(ValueError, match=r"Llama-3-70B needs \d+ GiB.*GPU\(s\) of 80 GiB.*node's 1 GPU\(s\).*"
                                         r"sft\.hardware\.gpus_per_node"):
        parallel_sizes(LLAMA3_70B, 1, 80.0, KV)
    with pytest.raises(ValueError, match="no GPUs"):
        parallel_sizes(LLAMA3_8B, 0, 80.0, KV)


def test_the_servers_sizing_is_the_loaders_fit():
    """One rule sizes a model for the loader, the vLLM server and the plans (inference.fit): the tensor-parallel
    size is fit's GPU count rounded up to a power of two that divides the node."""
    from med42_utils.inference import fit_shape

    for shape in (LLAMA3_8B, LLAMA3_70B, MIXTRAL_8X7B):
        f, p = fit_shape(shape, KV, 80.0), parallel_sizes(shape, 8, 80.0, KV)
        assert p.need_gib == round(f.need_gib, 1) and p.tensor == 1 << (f.gpus - 1).bit_length()


def test_model_shape_by_name_or_config(tmp_path):
    assert shape_for("meta-llama/Meta-Llama-3-70B-Instruct") is LLAMA3_70B
    assert shape_for("prometheus-eval/prometheus-8x7b-v2.0") is MIXTRAL_8X7B
    assert shape_for("m42-health/Llama3-Med42-8B") is LLAMA3_8B
    assert 12.8e9 < MIXTRAL_8X7B.active_parameters < 13.0e9  # 2 of 8 experts per token
    with pytest.raises(ValueError, match="add its ModelShape"):
        shape_for("/models/mystery")
    folder = tmp_path / "sft-model"  # a trained model's folder: its own config.json, whatever its name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"hidden_size": 8192, "num_hidden_layers": 80,
                                                    "num_attention_heads": 64, "num_key_value_heads": 8,
                                                    "intermediate_size": 28672, "vocab_size": 128256}))
    assert shape_for(str(folder)).parameters == LLAMA3_70B.parameters


# ---- vLLM: command line and environment, against the pinned release's files ----

def _fixture_lines(name: str) -> list[str]:
    return [l for l in (FIX / name).read_text().splitlines() if l.strip() and not l.startswith("#")]


def _pins() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "environment-vllm.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            r = Requirement(line)
            spec = list(r.specifier)
            assert len(spec) == 1 and spec[0].operator == "==", f"environment-vllm.txt: pin {line!r} exactly (==)"
            pins[r.name.lower()] = Version(spec[0].version)
    return pins


def test_vllm_command_uses_only_the_pinned_releases_arguments():
    known = set(_fixture_lines("vllm-0.34.0-serve-args.txt"))
    assert {"--tensor-parallel-size", "--data-parallel-size", "--port"} <= known  # the fixture is the real list
    par = parallel_sizes(LLAMA3_70B, 8, 80.0, KV)
    cmd = vllm_command("meta-llama/Meta-Llama-3-70B-Instruct", 8011, par, "policy", max_model_len=4096,
                       trust_remote_code=True)
    assert cmd[:3] == ["vllm", "serve", "meta-llama/Meta-Llama-3-70B-Instruct"]
    flags = [a for a in cmd if a.startswith("--")]
    assert flags and set(flags) <= known, sorted(set(flags) - known)
    assert cmd[cmd.index("--tensor-parallel-size") + 1] == "4" and cmd[cmd.index("--data-parallel-size") + 1] == "2"


def test_vllm_environment_pins_agree_with_the_release_requirements():
    pins = _pins()
    reqs = {}
    for name in ("vllm-0.34.0-requires.txt", "transformers-5.22.2-requires.txt"):
        for line in _fixture_lines(name):
            r = Requirement(line)
            if r.marker is None or r.marker.evaluate({"platform_machine": "x86_64", "python_version": "3.11",
                                                      "platform_system": "Linux"}):
                reqs.setdefault(r.name.lower().replace("_", "-"), []).append((name, r))
    assert pins["vllm"] == Version("0.34.0") and pins["transformers"] == Version("5.22.2")  # the fixtures' releases
    for pkg, v in pins.items():
        for src, r in reqs.get(pkg, []):
            assert v in r.specifier, f"environment-vllm.txt pins {pkg}=={v} but {src} requires {r}"
    for pkg, rs in reqs.items():  # every exact pin of the release is pinned here too
        for src, r in rs:
            if any(s.operator == "==" for s in r.specifier) and pkg in ("torch", "torchvision", "torchaudio"):
                assert pkg in pins, f"{src} pins {r}: add it to environment-vllm.txt"
    # and vLLM cannot live in the course environment: that is why the file exists
    course = {Requirement(d).name: Requirement(d) for d in __import__("tomllib").loads(
        (ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    torch_req = next(r for _, r in reqs["torch"])
    assert not any(Version(s.version) in torch_req.specifier for s in course["torch"].specifier)


# ---- lifecycle: start, health, stop ----

def _run_stub(port: int) -> list[str]:
    return [sys.executable, str(STUB), str(port)]


def test_port_taken_is_refused_naming_the_port(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(ServerError, match=f"port {port} on 127.0.0.1 is taken"):
            Server(_run_stub(port), port, tmp_path / "s.log", "m").start()


def test_never_up_times_out_with_the_log_tail_and_stops_the_process(tmp_path):
    port = free_port()
    cmd = [sys.executable, "-c", "import time; print('loading weights 3/7', flush=True); time.sleep(120)"]
    srv = Server(cmd, port, tmp_path / "s.log", "m", timeout_s=2)
    t0 = time.monotonic()
    with pytest.raises(ServerError, match=r"did not answer .*/health within 2 s[\s\S]*loading weights 3/7"):
        with srv:
            pass
    assert time.monotonic() - t0 < 30 and srv.proc is None  # stopped, not left behind


def test_server_that_dies_reports_its_exit_code_and_log(tmp_path):
    cmd = [sys.executable, "-c", "import sys; print('CUDA out of memory', flush=True); sys.exit(3)"]
    with pytest.raises(ServerError, match=r"exited with code 3[\s\S]*CUDA out of memory"):
        Server(cmd, free_port(), tmp_path / "s.log", "m", timeout_s=30).start()


def test_sigterm_to_the_job_stops_its_server(tmp_path):
    """SLURM's cancel and time limit send SIGTERM to the job: the server (own process group) must go too."""
    port = free_port()
    code = (f"import sys, time; sys.path.insert(0, {str(ROOT)!r}); from med42_utils.serve import Server\n"
            f"with Server({_run_stub(port)!r}, {port}, {str(tmp_path / 's.log')!r}, 'm') as s:\n"
            f"    print(s.proc.pid, flush=True); time.sleep(120)\n")
    job = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    pid = int(job.stdout.readline())
    assert port_in_use(port)
    job.send_signal(signal.SIGTERM)
    assert job.wait(30) == 128 + signal.SIGTERM
    for _ in range(50):
        if not port_in_use(port):
            break
        time.sleep(0.1)
    assert not port_in_use(port)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


# ---- requests: retries and bounded concurrency (a stub: a real server cannot be made to fail on demand) ----

@pytest.fixture()
def stub():
    sys.path.insert(0, str(STUB.parent))
    import stub_server

    servers = []

    def make(fails: int):
        httpd = stub_server.serve(free_port(), fails)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}/v1", stub_server.Handler

    yield make
    for s in servers:
        s.shutdown()
        s.server_close()


SAMPLING = {"temperature": 1.0, "top_p": 1.0, "max_new_tokens": 8}


def test_server_errors_are_retried_then_succeed(stub):
    base, h = stub(fails=2)
    text, n = chat(base, "m", [{"role": "user", "content": "hi there"}], SAMPLING, backoff=0.01)
    assert (text, n, h.hits) == ("echo: hi there", 3, 3)


def test_retries_give_up_naming_the_endpoint_and_client_errors_are_not_retried(stub):
    base, h = stub(fails=10)
    with pytest.raises(ServerError, match=r"HTTP 503 from http://127.0.0.1:\d+/v1.*after 3 tries"):
        chat(base, "m", [{"role": "user", "content": "x"}], SAMPLING, retries=2, backoff=0.01)
    base, h = stub(fails=0)
    with pytest.raises(ServerError, match=r"HTTP 400.*unknown model.*after 1 tries"):
        chat(base, "bad", [{"role": "user", "content": "x"}], SAMPLING, backoff=0.01)
    assert h.hits == 1


def test_chat_many_keeps_order(stub):
    base, _ = stub(fails=0)
    convs = [[{"role": "user", "content": f"q{i}"}] for i in range(12)]
    assert [t for t, _ in chat_many(base, "m", convs, SAMPLING, concurrency=4)] == [f"echo: q{i}" for i in
                                                                                     range(12)]
    with pytest.raises(ValueError, match="concurrency"):
        list(chat_many(base, "m", convs, SAMPLING, concurrency=0))


# ---- the real server: transformers serve on the tiny model ----

def test_transformers_serve_lifecycle(tmp_path, tiny_model_path):
    port = free_port()
    srv = Server(transformers_command(tiny_model_path, port), port, tmp_path / "server.log", tiny_model_path,
                 timeout_s=180)
    with srv:
        pid = srv.proc.pid
        text, n = chat(srv.api_base, srv.model_name, [{"role": "user", "content": "What is a fever?"}],
                       SAMPLING, seed=0)
        assert isinstance(text, str) and 1 <= n <= SAMPLING["max_new_tokens"]
    assert srv.proc is None and not port_in_use(port)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_make_judge_refuses_a_server_it_would_not_stop(tiny_params):
    from med42_utils.judging.judge import make_judge

    p = tiny_params.model_copy(update={"judge": tiny_params.judge.model_copy(
        update={"backend": "openai", "server": "transformers", "api_base": None})})
    with pytest.raises(ValueError, match="judge.server 'transformers'.*serving_judge"):
        make_judge(p)


def test_serving_judge_starts_no_server_without_work_and_stops_it_after(tiny_params, tmp_path, monkeypatch):
    """The judge's server starts on the first judgment only and is gone after the block (stub server command)."""
    from med42_utils import serve as judge_mod  # serving_judge lives in serve (it starts a server)

    started = []

    def fake_server_for(params, path, name, log_dir, **kw):
        port = free_port()
        srv = Server(_run_stub(port), port, Path(log_dir) / f"server-{name}.log", path, timeout_s=30)
        started.append(srv)
        return srv

    monkeypatch.setattr(serve, "server_for", fake_server_for)
    p = tiny_params.model_copy(update={"judge": tiny_params.judge.model_copy(
        update={"backend": "openai", "server": "transformers", "concurrency": 3})})
    with judge_mod.serving_judge(p, tmp_path) as j:
        assert j.name == "openai:tiny+ties" and started[0].proc is None  # not started yet
    assert started[0].proc is None
    with judge_mod.serving_judge(p, tmp_path) as j:
        out = j.generate([[{"role": "user", "content": f"q{i}"}] for i in range(5)])
        port = started[1].port
        assert out == [f"echo: q{i}" for i in range(5)] and port_in_use(port)
    assert started[1].proc is None and not port_in_use(port)


def test_vllm_server_for_the_job_sized_from_the_node(tiny_params, tmp_path, monkeypatch):
    """judge.server vllm: the executable from MED42_VLLM (a clear error when missing) and the node's GPUs."""
    p = tiny_params.model_copy(update={"judge": tiny_params.judge.model_copy(update={"server": "vllm"})})
    monkeypatch.setenv("MED42_VLLM", str(tmp_path / "no-venv" / "vllm"))
    with pytest.raises(ServerError, match="environment-vllm.txt.*MED42_VLLM"):
        serve.server_for(p, "meta-llama/Meta-Llama-3-70B-Instruct", "policy", tmp_path, gpus=(8, 80.0))
    exe = tmp_path / "vllm"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    monkeypatch.setenv("MED42_VLLM", str(exe))
    srv = serve.server_for(p, "meta-llama/Meta-Llama-3-70B-Instruct", "policy", tmp_path, port=8123, gpus=(8, 80.0))
    cmd = srv.command
    assert cmd[:3] == [str(exe), "serve", "meta-llama/Meta-Llama-3-70B-Instruct"] and srv.model_name == "policy"
    assert cmd[cmd.index("--tensor-parallel-size") + 1] == "4" and cmd[cmd.index("--port") + 1] == "8123"
    assert set(a for a in cmd if a.startswith("--")) <= set(_fixture_lines("vllm-0.34.0-serve-args.txt"))
