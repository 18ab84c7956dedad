"""One model behind an OpenAI-compatible server: `vllm serve` on GPU nodes (its own environment,
environment-vllm.txt), `transformers serve` on CPU (the tests). One server per model, so each model's memory
goes back when its server stops.

    with Server(server_command("transformers", path, port=8011), port=8011, log=run_dir / "server.log") as s:
        texts = chat_client.chat_many(s.api_base, s.model_name, conversations, sampling, concurrency=8)

The server is stopped on leaving the block: normally, on an error, on Ctrl-C and on SIGTERM (SLURM's cancel
and time limit), with the log's tail in the error when it never came up.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from .chat_client import ServerError
from .estimates import ModelShape, shape_for
from .inference import GPU_UTILIZATION, fit_shape

if TYPE_CHECKING:
    from .judging.types import Judge

GIB = 2**30


@dataclass(frozen=True)
class Parallel:
    tensor: int  # GPUs per replica (vLLM --tensor-parallel-size)
    data: int  # replicas on the node (vLLM --data-parallel-size)
    need_gib: float  # weights + KV cache of one replica
    per_gpu_gib: float  # what one GPU may hold for them (inference.usable_gib)


def parallel_sizes(shape: ModelShape, gpus: int, gpu_gib: float, kv_tokens: int) -> Parallel:
    """Tensor- and data-parallel sizes for one node: inference.fit's fewest GPUs for the weights and a KV cache of
    `kv_tokens` tokens per replica, rounded up to a power of two that divides `gpus` (vLLM splits attention heads
    evenly); the rest of the node runs replicas. On 8 GPUs of 80 GB (8 x 4096 tokens of KV cache): 8B 1 GPU x 8
    replicas; the 8x7B judge (87 GiB of weights) 2 GPUs x 4; 70B (131 GiB) 4 GPUs x 2."""
    if gpus < 1:
        raise ValueError(f"no GPUs to serve {shape.name} on (gpus={gpus}); run the judging job on a GPU node")
    f = fit_shape(shape, kv_tokens, gpu_gib)
    tp = 1
    while tp < f.gpus or gpus % tp:
        tp *= 2
        if tp > gpus:
            raise ValueError(f"{shape.name} needs {f.need_gib:.0f} GiB (weights + KV cache of {kv_tokens:,} tokens) = "
                             f"{f.gpus} GPU(s) of {gpu_gib:.0f} GiB ({f.per_gpu_gib:.1f} GiB usable each), as a power "
                             f"of two dividing the node's {gpus} GPU(s): give the GPU jobs' node more GPUs "
                             "(sft.hardware.gpus_per_node), lower judge.concurrency or judge.server_max_model_len, "
                             "or serve a smaller model")
    return Parallel(tp, gpus // tp, round(f.need_gib, 1), round(f.per_gpu_gib, 1))


def vllm_command(model: str, port: int, parallel: Parallel, served_name: str, dtype: str = "bfloat16",
                 seed: int = 0, max_model_len: int | None = None, gpu_memory_utilization: float = GPU_UTILIZATION,
                 trust_remote_code: bool = False, host: str = "127.0.0.1", vllm: str = "vllm") -> list[str]:
    """`vllm serve` for one model (arguments checked against vLLM 0.34.0's serve CLI in the tests)."""
    cmd = [vllm, "serve", model, "--host", host, "--port", str(port), "--served-model-name", served_name,
           "--dtype", dtype, "--seed", str(seed), "--tensor-parallel-size", str(parallel.tensor),
           "--data-parallel-size", str(parallel.data), "--gpu-memory-utilization", str(gpu_memory_utilization),
           "--disable-log-stats"]
    if max_model_len:
        cmd += ["--max-model-len", str(max_model_len)]
    if trust_remote_code:
        cmd += ["--trust-remote-code"]
    return cmd


def transformers_command(model: str, port: int, seed: int = 0, device: str = "cpu",
                         host: str = "127.0.0.1") -> list[str]:
    """`transformers serve` pinned to one model (the CPU stand-in for vLLM; the request's model is the path)."""
    exe = Path(sys.executable).with_name("transformers")
    return [str(exe) if exe.exists() else "transformers", "serve", model, "--host", host, "--port", str(port),
            "--device", device, "--default-seed", str(seed), "--log-level", "warning"]


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def log_tail(path: Path, lines: int = 20) -> str:
    p = Path(path)
    if not p.is_file():
        return "(no server log)"
    return "\n".join(p.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


class Server:
    """A server process for one model: started, waited for (GET /health), stopped (process group)."""

    def __init__(self, command: list[str], port: int, log: Path, model_name: str, host: str = "127.0.0.1",
                 timeout_s: float = 600.0, env: dict | None = None, replicas: int = 1):
        self.command, self.port, self.host, self.log = command, port, host, Path(log)
        self.model_name, self.timeout_s, self.env = model_name, timeout_s, env
        self.replicas = replicas  # copies of the model behind the port (vLLM --data-parallel-size)
        self.proc: subprocess.Popen | None = None
        self._old_term = None

    @property
    def api_base(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> "Server":
        if port_in_use(self.port, self.host):
            raise ServerError(f"port {self.port} on {self.host} is taken by another process; stop it or pick "
                              f"another port (judge.api_base / the server's port) before starting {self.command[0]}")
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True, env={**os.environ, **(self.env or {})})
        self.wait_healthy()
        return self

    def wait_healthy(self) -> None:
        url = f"http://{self.host}:{self.port}/health"
        t0 = time.monotonic()
        while True:
            code = self.proc.poll()
            if code is not None:
                raise ServerError(f"{' '.join(self.command[:3])} exited with code {code} before {url} answered; "
                                  f"server log {self.log} ends:\n{log_tail(self.log)}")
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            if time.monotonic() - t0 > self.timeout_s:
                self.stop()
                raise ServerError(f"{' '.join(self.command[:3])} did not answer {url} within {self.timeout_s:.0f} s "
                                  f"(raise the timeout if the model is still loading); server log {self.log} "
                                  f"ends:\n{log_tail(self.log)}")
            time.sleep(0.5)

    def stop(self, grace_s: float = 20.0) -> None:
        p, self.proc = self.proc, None
        if p is None or p.poll() is not None:
            return
        try:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        except ProcessLookupError:
            pass

    def __enter__(self) -> "Server":
        if threading.current_thread() is threading.main_thread():  # SLURM's cancel / time limit: SIGTERM
            self._old_term = signal.signal(signal.SIGTERM, _raise_exit)
        try:
            return self.start()
        except BaseException:
            self.__exit__(None, None, None)
            raise

    def __exit__(self, *exc) -> None:
        self.stop()
        if self._old_term is not None:
            signal.signal(signal.SIGTERM, self._old_term)
            self._old_term = None


def _raise_exit(signum, frame):
    raise SystemExit(128 + signum)


def node_gpus() -> tuple[int, float]:  # pragma: no cover - reads the GPU
    """(GPUs visible, GiB of the first) on this node."""
    import torch

    n = torch.cuda.device_count()
    if not n:
        return 0, 0.0
    return n, torch.cuda.get_device_properties(0).total_memory / GIB


def find_vllm() -> str | None:
    """The `vllm` of environment-vllm.txt's venv: $MED42_VLLM, else `vllm` on PATH; None when neither."""
    import shutil

    return shutil.which(os.environ.get("MED42_VLLM") or "vllm")


def vllm_executable() -> str:
    """find_vllm(), or a clear error naming the fix."""
    exe = os.environ.get("MED42_VLLM") or "vllm"
    found = find_vllm()
    if not found:
        raise ServerError(f"judge.server 'vllm' needs the vllm executable ({exe!r} not found): install vLLM in its own "
                          "venv from environment-vllm.txt and export MED42_VLLM=<venv>/bin/vllm (docs/serving.md)")
    return found


DEFAULT_MAX_MODEL_LEN = 4096  # the KV-cache length sizing counts per request when judge.server_max_model_len is null


def server_kv_tokens(judge_params) -> int:
    """KV-cache tokens one replica is sized for: judge.concurrency requests of judge.server_max_model_len tokens."""
    return judge_params.concurrency * (judge_params.server_max_model_len or DEFAULT_MAX_MODEL_LEN)


def in_flight(judge_params, server: "Server | None") -> int:
    """Requests the client keeps in flight: judge.concurrency per replica of the server (one without a server)."""
    return judge_params.concurrency * (server.replicas if server is not None else 1)


def server_for(params, model_path: str, name: str, log_dir: Path, kind: str | None = None,
               port: int | None = None, gpus: tuple[int, float] | None = None) -> Server:
    """The server the params ask for to serve one model (judge.server: vllm or transformers)."""
    j = params.judge
    kind = kind or j.server
    port = port or free_port()
    log = Path(log_dir) / f"server-{name}.log"
    if kind == "transformers":
        return Server(transformers_command(model_path, port, params.seed), port, log, model_path,
                      timeout_s=j.server_timeout_s)
    if kind == "vllm":
        n, gib = gpus or node_gpus()
        par = parallel_sizes(shape_for(model_path), n, gib, server_kv_tokens(j))
        vllm = vllm_executable()
        cmd = vllm_command(model_path, port, par, name, dtype=params.model.torch_dtype, seed=params.seed,
                           max_model_len=j.server_max_model_len, trust_remote_code=params.model.trust_remote_code,
                           vllm=vllm)
        return Server(cmd, port, log, name, timeout_s=j.server_timeout_s, replicas=par.data)
    raise ValueError(f"judge.server is '{kind}': choose 'vllm' (GPU nodes) or 'transformers' (CPU) to start a "
                     "server per model, or 'none' to use judge.api_base as given")


__all__ = ["Parallel", "parallel_sizes", "vllm_command", "transformers_command", "port_in_use", "free_port",
           "log_tail", "Server", "node_gpus", "find_vllm", "vllm_executable", "DEFAULT_MAX_MODEL_LEN",
           "server_kv_tokens", "in_flight", "server_for", "serving_judge"]


@contextmanager
def serving_judge(params, log_dir: Path, **kw) -> Iterator[Judge]:
    """judging.judge.make_judge; for judge.backend 'openai' with judge.server set, the judge model's own server is started
    at the first judgment and stopped on leaving the block, so its memory goes back."""
    from .judging.judge import OpenAIJudge, make_judge

    j = params.judge
    if j.backend != "openai" or j.server == "none":
        yield make_judge(params, **kw)
        return
    from .tiny_model import resolve_named

    srv = server_for(params, resolve_named(params, j.model), "judge", log_dir)
    judge = OpenAIJudge(j.model, srv.api_base, None, j.judge_sampling.model_dump(), j.max_retries,
                        allow_ties=j.allow_ties, style=j.prompt, concurrency=in_flight(j, srv),
                        served_name=srv.model_name)
    judge.before_first_request = srv.__enter__  # started on the first judgment: all cached, no server
    try:
        yield judge
    finally:
        srv.__exit__(None, None, None)
