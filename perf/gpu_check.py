"""One prepared GPU check that fits a short loan (run it as `bash perf/gpu_check --out DIR`; docs/gpu-check.md).

From the repo root on the GPU machine it installs the carried wheels (perf/gpu_kit) into a temporary folder,
then runs, in order, each step as its own process with a timeout and one line of result:

  setup        install the wheels (pip --no-index --no-deps --target), then the versions and the device
  gpu_smoke    (a) python -m med42_utils.runner --size gpu_smoke, notebooks 00 -> 06
  bench_sft    (b) perf/bench_sft_throughput.py at the 8B shape: 'wrapped + sdpa' and the default configuration
  bench_dpo    (b) perf/bench_dpo_throughput.py at the 8B shape: 'sdpa, live reference' and the default
  equivalence  (c) packed-vs-alone losses on the device
  judge        (d) the judge path through a Mistral-format (Prometheus 2) chat template on the device

The whole run keeps to a budget (default 7 minutes): a step gets at most what is left, a step with too little
left is skipped, and the summary (DIR/summary.json) is rewritten after every step, so a run stopped by its
budget, its caller or a crash still leaves one. Logs: DIR/<step>.log (8 files at most come back from a device).

--cpu runs the same steps at CPU sizes with the same summary (what the tests run): no install (this
environment's packages), notebook 00 only at size tiny, the benchmarks' small CPU shape.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PERF = ROOT / "perf"
WHEELS = ROOT / ".gpu_wheels"
BUDGET_S = 420      # the 7 minutes; the whole GPU check measured about 9.5 minutes on a fresh H200
CPU_BUDGET_S = 1200  # --cpu: a shared 2-core box; the steps are checked, not timed
MIN_STEP_S = 15  # a step is not started with less than this left
SFT_CONFIGS = ["wrapped + sdpa", "default"]
DPO_CONFIGS = ["sdpa, live reference", "default"]
BENCH_KEYS = ("tokens_per_s", "mfu", "ratio", "peak_gib", "recompiles_after_warmup", "seconds_per_step",
              "pairs_per_s", "effective", "note")


@dataclass
class Step:
    name: str
    title: str
    timeout_s: int
    reserve_s: int  # the least time worth giving it: earlier steps leave this much for it
    cmd: list[str] = field(default_factory=list)
    status: str = "pending"  # pass / fail / timeout / skipped
    seconds: float = 0.0
    result: str = ""
    figures: dict = field(default_factory=dict)

    def summary(self) -> dict:
        return {"name": self.name, "title": self.title, "status": self.status, "seconds": round(self.seconds, 1),
                "timeout_s": self.timeout_s, "result": self.result, "figures": self.figures, "log": f"{self.name}.log"}


def plan(cpu: bool, work: Path, notebooks: list[str] | None) -> list[Step]:
    py = sys.executable
    cpu_flag = ["--cpu"] if cpu else []
    size = "tiny" if cpu else "gpu_smoke"
    nbs = notebooks if notebooks is not None else (["00"] if cpu else [])
    runner = [py, "-m", "med42_utils.runner", "--size", size, "--run-name", "gpu_check", "--force",
              *(["--only", *nbs] if nbs else [])]
    # GPU: 8B widths, layers 2 and 4, seq 8192 (SFT) / 4096 (DPO); fewer timed steps than the scripts' defaults
    sft = [py, str(PERF / "bench_sft_throughput.py"), "--configs", *SFT_CONFIGS, "--json", str(work / "bench_sft.json")]
    dpo = [py, str(PERF / "bench_dpo_throughput.py"), "--configs", *DPO_CONFIGS, "--json", str(work / "bench_dpo.json")]
    if cpu:
        sft += ["--cpu", "--layers", "1", "2", "--seq", "32", "--warmup", "1", "--steps", "1"]
        dpo += ["--cpu", "--layers", "1", "2", "--seq", "32", "--warmup", "1", "--steps", "1", "--micro-batch", "1"]
    else:
        sft += ["--warmup", "3", "--steps", "5"]
        dpo += ["--warmup", "3", "--steps", "5"]
    steps_py = str(PERF / "gpu_check_steps.py")
    # timeout / reserve (seconds) on a GPU: from the first run on a fresh H200 (2026-11-30, docs/gpu-check.md), where
    # the compile caches were cold: gpu_smoke 00-04 took 229 s and 05 did not finish by 270 s; bench_sft and
    # bench_dpo did not finish in 70 / 60 s cold and took 40 / 53 s warm; equivalence 40 s warm; judge 19 s.
    # On CPU (the tests) the timeouts are generous: the steps are checked for working, not timed, on a shared box.
    g = not cpu
    return [
        Step("setup", "install the carried wheels; versions and device", 90 if g else 120, 20,
             [py, steps_py, "env", *cpu_flag]),
        Step("gpu_smoke", f"(a) runner --size {size}" + (f" --only {' '.join(nbs)}" if nbs else " 00 -> 06"),
             400 if g else 240, 60, runner),
        Step("bench_sft", "(b) SFT throughput: " + " vs ".join(SFT_CONFIGS), 150 if g else 300, 90 if g else 30, sft),
        Step("bench_dpo", "(b) DPO throughput: " + " vs ".join(DPO_CONFIGS), 150 if g else 300, 80 if g else 30, dpo),
        Step("equivalence", "(c) packed-vs-alone loss equivalence on the device", 90 if g else 180, 50 if g else 20,
             [py, steps_py, "equivalence", *cpu_flag]),
        Step("judge", "(d) judge path, Mistral-format chat template, on the device", 60 if g else 180, 30 if g else 20,
             [py, steps_py, "judge", *cpu_flag]),
    ]


def step_timeout(steps: list[Step], i: int, left: float, wanted) -> float:
    """Step i's own timeout, cut so that every later step still to run keeps its reserve out of what is left."""
    later = sum(s.reserve_s for s in steps[i + 1:] if wanted(s))
    return min(steps[i].timeout_s, max(left - later, steps[i].reserve_s, 0), left)


def install(wheels: Path, site: Path, log) -> tuple[bool, str, dict]:
    """pip install --no-index --no-deps --target site wheels/*.whl: the machine has no network."""
    found = sorted(wheels.glob("*.whl"))
    if not found:
        return False, f"no wheels in {wheels}: run perf/gpu_kit on a machine with pip and carry that folder", {}
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--no-compile",
                        "--no-cache-dir", "--target", str(site), *map(str, found)], stdout=log, stderr=subprocess.STDOUT)
    mb = sum(p.stat().st_size for p in found) / 1e6
    fig = {"wheels": len(found), "wheel_mb": round(mb, 1), "install_seconds": round(time.perf_counter() - t0, 1)}
    if r.returncode:
        return False, f"pip could not install the {len(found)} wheels (see setup.log)", fig
    return True, f"{len(found)} wheels ({mb:.1f} MB) installed in {fig['install_seconds']}s", fig


def run_step(step: Step, env: dict, log_path: Path, timeout: float) -> None:
    """Run one step's process in its own session (so a timeout ends its children too), echoing its output."""
    t0 = time.perf_counter()
    with open(log_path, "a") as log:
        log.write(f"$ {' '.join(step.cmd)}\n")
        log.flush()
        p = subprocess.Popen(step.cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True, bufsize=1)
        last, deadline = None, time.monotonic() + timeout
        timed_out = False
        import selectors

        sel = selectors.DefaultSelector()
        sel.register(p.stdout, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            if not sel.select(timeout=min(left, 1.0)):
                if p.poll() is not None:
                    break
                continue
            line = p.stdout.readline()
            if not line:
                break
            log.write(line)
            if line.startswith("RESULT "):
                last = line
            elif line.strip():
                print(f"  [{step.name}] {line.rstrip()[:200]}", flush=True)
        if timed_out:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(p.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    p.wait(timeout=5)
                    break
                except subprocess.TimeoutExpired:
                    continue
        rc = p.wait()
    step.seconds = time.perf_counter() - t0
    if timed_out:
        step.status, step.result = "timeout", f"stopped after {timeout:.0f}s (its timeout or the budget left)"
        return
    step.status = "pass" if rc == 0 else "fail"
    if last:
        data = json.loads(last[len("RESULT "):])
        step.result, step.figures = data["line"], data["figures"]
        if rc == 0 and not data["ok"]:
            step.status = "fail"
    elif rc:
        tail = [x for x in log_path.read_text().splitlines() if x.strip()][-1:]
        step.result = f"exit status {rc}: {tail[0][:300] if tail else ''}"


def bench_figures(path: Path) -> tuple[str, dict]:
    """The rows the benchmark wrote, reduced to what the summary keeps, and one line."""
    rows = json.loads(path.read_text())
    keep = [{k: r.get(k) for k in ("config", *BENCH_KEYS) if k in r} for r in rows]
    parts = []
    for r in rows:
        tps = f"{r['tokens_per_s']:,.0f} tok/s/GPU" if r.get("tokens_per_s") else "unresolved"
        mfu = f"MFU {r['mfu']:.1%}" if r.get("mfu") else ""
        peak = max((v for v in (r.get("peak_gib") or {}).values() if v is not None), default=None)
        parts.append(f"{r['config']}: {tps}" + (f", {mfu}" if mfu else "")
                     + (f", peak {peak:.1f} GiB" if peak is not None else "")
                     + f", {r['recompiles_after_warmup']} recompiles")
    return "; ".join(parts), {"rows": keep}


def smoke_figures(log: Path) -> dict:
    """Per-notebook seconds from the runner's '[i/n] NN_name.ipynb done in Ns' lines."""
    import re

    done = re.findall(r"\] (\d\d_[a-z0-9_]+)\.ipynb done in (\d+)s", log.read_text())
    return {"notebooks": {n: int(s) for n, s in done}}


def write_summary(out: Path, meta: dict, steps: list[Step], started: float, complete: bool) -> dict:
    s = {**meta, "elapsed_s": round(time.monotonic() - started, 1), "complete": complete,
         "passed": sum(st.status == "pass" for st in steps), "steps": [st.summary() for st in steps]}
    tmp = out / ".summary.json.tmp"
    tmp.write_text(json.dumps(s, indent=1, default=str))
    tmp.replace(out / "summary.json")
    return s


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="folder for summary.json and the logs ($OUT on the device)")
    ap.add_argument("--budget", type=float, default=None,
                    help=f"seconds for the whole run (default {BUDGET_S}; --cpu {CPU_BUDGET_S})")
    ap.add_argument("--cpu", action="store_true", help="the same steps at CPU sizes (the tests' mode)")
    ap.add_argument("--wheels", type=Path, default=WHEELS, help="the folder perf/gpu_kit filled")
    ap.add_argument("--only", nargs="+", default=None, help="step names to run (default all, in order)")
    ap.add_argument("--notebooks", nargs="*", default=None, help="notebooks for (a) (default: all on GPU, 00 on CPU)")
    a = ap.parse_args(argv)
    started = time.monotonic()
    a.budget = a.budget if a.budget is not None else CPU_BUDGET_S if a.cpu else BUDGET_S
    a.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    steps = plan(a.cpu, work, a.notebooks)
    names = [s.name for s in steps]
    if a.only and set(a.only) - set(names):
        raise SystemExit(f"unknown step(s) {sorted(set(a.only) - set(names))}; choose from {names}")
    meta = {"gpu_check": 1, "mode": "cpu" if a.cpu else "gpu", "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "budget_s": a.budget, "git_head": _commit()}
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "MED42_OUTPUTS": os.environ.get("MED42_OUTPUTS", str(work / "outputs"))}
    site = work / "site"
    pythonpath = [str(ROOT)] + ([] if a.cpu else [str(site)]) + [p for p in env.get("PYTHONPATH", "").split(":") if p]
    env["PYTHONPATH"] = ":".join(pythonpath)
    done_ok = True
    try:
        wanted = lambda s: not a.only or s.name in a.only  # noqa: E731
        for i, step in enumerate(steps):
            if not wanted(step):
                step.status, step.result = "skipped", "not asked for (--only)"
                continue
            left = a.budget - (time.monotonic() - started)
            if left < MIN_STEP_S:
                step.status, step.result = "skipped", f"budget spent ({left:.0f}s of {a.budget:.0f}s left)"
                continue
            timeout = step_timeout(steps, i, left, wanted)
            step.timeout_s = round(timeout)
            print(f"== {step.name}: {step.title} (timeout {timeout:.0f}s, {left:.0f}s of the budget left)", flush=True)
            log_path = a.out / f"{step.name}.log"
            log_path.write_text("")
            if step.name == "setup" and not a.cpu:
                with open(log_path, "a") as log:
                    ok, line, fig = install(a.wheels, site, log)
                print(f"  [setup] {line}", flush=True)
                if not ok:
                    step.status, step.result, step.figures = "fail", line, fig
                    write_summary(a.out, meta, steps, started, False)
                    continue
            run_step(step, env, log_path, timeout)
            if step.name == "setup" and not a.cpu:
                step.figures = {**fig, **step.figures}
                step.result = f"{line}; {step.result}"
            if step.name.startswith("bench_") and step.status == "pass":
                step.result, extra = bench_figures(work / f"{step.name}.json")
                step.figures.update(extra)
            if step.name == "gpu_smoke":
                step.figures.update(smoke_figures(log_path))
                if step.status == "pass":
                    nb = step.figures["notebooks"]
                    step.result = f"{len(nb)} notebooks: " + ", ".join(f"{n[:2]} {s}s" for n, s in nb.items())
            print(f"-> {step.name}: {step.status.upper()} in {step.seconds:.0f}s: {step.result}", flush=True)
            write_summary(a.out, meta, steps, started, False)
    finally:
        s = write_summary(a.out, meta, steps, started, complete=all(st.status != "pending" for st in steps))
        shutil.rmtree(work, ignore_errors=True)
    done_ok = all(st.status in ("pass", "skipped") for st in steps) and not any(
        st.status == "skipped" and st.result.startswith("budget") for st in steps)
    print(f"\nsummary ({s['mode']}, {s['elapsed_s']:.0f}s of {a.budget:.0f}s): {a.out / 'summary.json'}")
    for st in steps:
        print(f"  {st.name:12s} {st.status:8s} {st.seconds:6.0f}s  {st.result[:160]}")
    return 0 if done_ok else 1


def _commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


if __name__ == "__main__":
    sys.exit(main())
