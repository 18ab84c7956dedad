"""CPU cost of 05 at tiny: what the taught facts and the letter framing add, as ratios to the Table 4 tasks alone.

    MED42_OUTPUTS=<outputs> .venv/bin/python perf/bench_eval_cost.py --run-name demo [--models base sft]

Evaluates the given stages of an existing tiny run three ways in one process and prints the CPU seconds
(time.process_time, this process: lm-eval and the tiny model run in it) of each and their ratio to the first:
  table4   the seven Table 4 tasks, eval.limit rows (05 before the course task and the letter framing)
  +taught  ... and the 25 taught-facts questions
  +letters ... and the five exams again in the letter framing (as 05 runs it for eval.letter_models)
Not a test: figures depend on the machine; CPU time, not wall time, so other load on the box matters less.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run-name", required=True)
    ap.add_argument("--models", nargs="+", default=["base", "sft"])
    args = ap.parse_args()

    from med42_utils.benchmarks import run as bench
    from med42_utils.benchmarks.taught import TASK
    from med42_utils.models import resolve_model
    from med42_utils.params import load_params

    params = load_params("tiny")
    table4 = [t for t in params.eval.tasks if t != TASK]
    lms = {m: bench.make_lm(params, resolve_model(params, args.run_name, m)) for m in args.models}
    for lm in lms.values():  # warm-up: first-call costs (task index, tokenizer caches) out of the comparison
        bench.evaluate(params, lm, table4[:1], limit=1)
    cost = {}
    for label, course, letters in (("table4", False, False), ("+taught", True, False), ("+letters", True, True)):
        t0 = time.process_time()
        for lm in lms.values():
            bench.evaluate(params, lm, table4)
            if course:
                bench.evaluate(params, lm, [TASK], limit=None)
            if letters:
                bench.evaluate(params, lm, table4, framing="letters")
        cost[label] = time.process_time() - t0
    for label, s in cost.items():
        print(f"{label:9s} {s:7.1f} CPU s for {len(lms)} model(s)   x{s / cost['table4']:.2f} of table4")


if __name__ == "__main__":
    main()
