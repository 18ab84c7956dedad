"""Answer tokens per second through an OpenAI-compatible server against in-process generation, same machine,
same model, same questions and sampling, in one run: 06's two answer routes (judging/answers.py). On CPU the
server is `transformers serve` on the tiny model (the stand-in for vLLM, which needs a GPU and its own
environment); its start-up is timed apart, since a job pays it once per model.

    .venv/bin/python perf/bench_serve.py [--size tiny] [--questions 14] [--max-new-tokens 32] [--concurrency 4]

The figure: served tokens/s / in-process tokens/s (each route's tokens counted by itself: the server's
usage.completion_tokens, the in-process non-pad tokens). A busy machine moves both; the ratio is from one run.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from med42_utils.judging.answers import _generate_openai, _generate_transformers
from med42_utils.judging.questions import questions_from_params
from med42_utils.params import load_params
from med42_utils.serve import free_port, server_for
from med42_utils.tiny_model import resolve_base_model


def _timed(gen) -> tuple[int, int, float]:
    t0 = time.perf_counter()
    n = tokens = 0
    for _, _, k in gen:
        n, tokens = n + 1, tokens + k
    return n, tokens, time.perf_counter() - t0


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="tiny")
    ap.add_argument("--questions", type=int, default=14)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--concurrency", type=int, default=4)
    a = ap.parse_args(argv)
    params = load_params(a.size, {"judge.answers_backend": "openai", "judge.server": "transformers",
                                  "judge.concurrency": a.concurrency, "judge.num_questions": a.questions,
                                  "judge.sampling.max_new_tokens": a.max_new_tokens})
    questions, _ = questions_from_params(params)
    model = resolve_base_model(params)
    local = _timed(_generate_transformers(params, model, questions, params.judge.batch_size))
    with tempfile.TemporaryDirectory() as d:
        srv = server_for(params, model, "bench", Path(d), port=free_port())
        t0 = time.perf_counter()
        with srv:
            startup = time.perf_counter() - t0
            # the same requests the answers route sends, to the server already up (judge.server none + api_base)
            p2 = params.model_copy(update={"judge": params.judge.model_copy(
                update={"server": "none", "api_base": srv.api_base})})
            served = _timed(_generate_openai(p2, "bench", srv.model_name, questions, Path(d)))
    out = {"questions": len(questions), "max_new_tokens": a.max_new_tokens, "concurrency": a.concurrency,
           "batch_size": params.judge.batch_size,
           "in_process": {"answers": local[0], "tokens": local[1], "seconds": round(local[2], 2),
                          "tokens_per_s": round(local[1] / local[2], 1)},
           "served": {"answers": served[0], "tokens": served[1], "seconds": round(served[2], 2),
                      "tokens_per_s": round(served[1] / served[2], 1), "server_startup_s": round(startup, 1)}}
    out["ratio_served_over_in_process"] = round(out["served"]["tokens_per_s"] / out["in_process"]["tokens_per_s"], 3)
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
