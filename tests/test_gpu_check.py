"""perf/gpu_kit (which wheels travel to the GPU machine, and the size limit) and perf/gpu_check (its budget, its
timeouts, its summary; --cpu runs every step for real at CPU sizes). No network: the kit's resolver and
download need PyPI and are not run here; its choices are tested on a resolution given to it."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from med42_utils.paths import repo_root

PERF = repo_root() / "perf"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, PERF / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


kit = _load("gpu_kit")
check = _load("gpu_check")


# --- perf/gpu_kit ---------------------------------------------------------------------------------------------

def test_machine_list_reads_names_versions_and_keep(tmp_path):
    f = tmp_path / "list.txt"
    f.write_text("# comment\nTorch==2.11.0  keep\nhuggingface_hub==1.33.0\nattrs   # no version\n\n")
    got = kit.read_machine_list(f)
    assert got == {"torch": kit.OnMachine("2.11.0", True), "huggingface-hub": kit.OnMachine("1.33.0"),
                   "attrs": kit.OnMachine(None)}


@pytest.mark.parametrize("line, why", [("torch 2.11", "not 'name'"), ("torch==2.11 keepit", "not 'name'"),
                                       ("attrs\nattrs", "listed twice")])
def test_machine_list_bad_lines_are_named(tmp_path, line, why):
    f = tmp_path / "list.txt"
    f.write_text(line + "\n")
    with pytest.raises(ValueError, match=why):
        kit.read_machine_list(f)


def test_the_shipped_list_parses_and_keeps_the_cuda_torch():
    machine = kit.read_machine_list()
    assert machine["torch"].keep and machine["torch"].version
    assert machine["triton"].keep
    assert "trl" not in machine and "papermill" not in machine  # what the kit exists to carry


def test_project_pins_are_exact_and_include_the_gpu_extra(tmp_path):
    pins = kit.project_pins()
    assert pins["transformers"][1] and pins["liger-kernel"][0] == "liger-kernel"
    bad = tmp_path / "pyproject.toml"
    bad.write_text('[project]\ndependencies = ["torch>=2"]\n')
    with pytest.raises(ValueError, match="not an exact pin"):
        kit.project_pins(bad)


def test_resolver_inputs_put_keep_packages_at_the_machines_version():
    machine = {"torch": kit.OnMachine("2.11.0", True), "numpy": kit.OnMachine("2.5.2"),
               "transformers": kit.OnMachine("5.17.0"), "attrs": kit.OnMachine(None)}
    pins = {"torch": ("torch", "2.13.0"), "transformers": ("transformers", "5.23.0"), "trl": ("trl", "1.16.0")}
    reqs, cons = kit.resolver_inputs(pins, machine)
    assert reqs == ["torch==2.11.0", "transformers==5.23.0", "trl==1.16.0"]
    assert cons == ["numpy==2.5.2"]  # unpinned and recorded; attrs has no recorded version


def test_select_carries_what_is_missing_or_pinned_differently():
    machine = {"torch": kit.OnMachine("2.11.0", True), "transformers": kit.OnMachine("5.17.0"),
               "accelerate": kit.OnMachine("1.15.0"), "pyarrow": kit.OnMachine(None), "numpy": kit.OnMachine("2.5.2")}
    pins = {"torch": ("torch", "2.13.0"), "transformers": ("transformers", "5.23.0"),
            "accelerate": ("accelerate", "1.15.0"), "pyarrow": ("pyarrow", "26.0.1"), "trl": ("trl", "1.16.0")}
    resolved = [("torch", "2.11.0"), ("transformers", "5.23.0"), ("accelerate", "1.15.0"), ("pyarrow", "26.0.1"),
                ("numpy", "2.5.2"), ("trl", "1.16.0"), ("Sqlite_Dict", "2.1.0")]
    got = {c.name: (c.carry, c.why) for c in kit.select(resolved, machine, pins)}
    assert got["trl"] == (True, "not on the machine") and got["Sqlite_Dict"][0]
    assert got["transformers"] == (True, "project pins 5.23.0, machine has 5.17.0")
    assert not got["torch"][0] and "keep" in got["torch"][1]
    assert not got["accelerate"][0] and not got["numpy"][0]
    assert not got["pyarrow"][0] and "not recorded" in got["pyarrow"][1]  # unknown version: the machine's is used


def test_stale_wheels_and_size_limit(tmp_path):
    for name, size in (("trl-1.16.0-py3-none-any.whl", 3_000_000), ("trl-1.15.0-py3-none-any.whl", 10),
                       ("nltk-3.10.4-py3-none-any.whl", 2_000_000)):
        (tmp_path / name).write_bytes(b"\0" * size)
    wanted = [kit.Choice("trl", "1.16.0", True, ""), kit.Choice("nltk", "3.10.4", True, ""),
              kit.Choice("torch", "2.11.0", False, "")]
    assert [p.name for p in kit.stale_wheels(tmp_path, wanted)] == ["trl-1.15.0-py3-none-any.whl"]
    (tmp_path / "trl-1.15.0-py3-none-any.whl").unlink()
    sizes, total = kit.size_report(tmp_path, limit_mb=6)
    assert [n for n, _ in sizes] == ["trl-1.16.0-py3-none-any.whl", "nltk-3.10.4-py3-none-any.whl"]
    assert total == pytest.approx(5.0)
    with pytest.raises(SystemExit, match=r"5\.0 MB, over the 4 MB limit.*trl-1\.16\.0"):
        kit.size_report(tmp_path, limit_mb=4)


# --- perf/gpu_check --------------------------------------------------------------------------------------------

def test_later_steps_keep_their_reserve(tmp_path):
    steps = check.plan(False, tmp_path, None)
    every = lambda s: True  # noqa: E731
    later = sum(s.reserve_s for s in steps[2:])
    # (a) is cut so that (b)-(d) keep their reserves; never below its own reserve, never above what is left
    assert check.step_timeout(steps, 1, 420, every) == 420 - later
    assert check.step_timeout(steps, 1, 10_000, every) == steps[1].timeout_s
    assert check.step_timeout(steps, 1, 100, every) == steps[1].reserve_s
    assert check.step_timeout(steps, 1, 30, every) == 30
    only_a = lambda s: s.name == "gpu_smoke"  # noqa: E731
    assert check.step_timeout(steps, 1, 420, only_a) == min(steps[1].timeout_s, 420)


def test_a_step_past_its_timeout_is_stopped_with_its_children(tmp_path):
    pidfile = tmp_path / "child.pid"
    step = check.Step("slow", "sleeps", 1, 1, [sys.executable, "-c",
        f"import subprocess,sys,time; p=subprocess.Popen([sys.executable,'-c','import time; time.sleep(60)']); "
        f"open({str(pidfile)!r},'w').write(str(p.pid)); print('started', flush=True); time.sleep(60)"])
    t0 = time.monotonic()
    check.run_step(step, dict(os.environ), tmp_path / "slow.log", timeout=3)
    assert time.monotonic() - t0 < 20
    assert step.status == "timeout" and "stopped after 3s" in step.result
    assert "started" in (tmp_path / "slow.log").read_text()
    child = int(pidfile.read_text())
    time.sleep(0.5)
    stat = Path(f"/proc/{child}/stat")  # the grandchild went with the step's process group (gone, or a zombie)
    assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")


def test_a_step_reports_its_result_line_and_failures(tmp_path):
    ok = check.Step("x", "", 30, 1, [sys.executable, "-c",
                    "print('RESULT ' + __import__('json').dumps({'ok': False, 'line': 'bad figure', 'figures': {'n': 3}}))"])
    check.run_step(ok, dict(os.environ), tmp_path / "x.log", timeout=30)
    assert (ok.status, ok.result, ok.figures) == ("fail", "bad figure", {"n": 3})  # exit 0 but not ok: a failure
    crash = check.Step("y", "", 30, 1, [sys.executable, "-c", "raise SystemExit('no CUDA device here')"])
    check.run_step(crash, dict(os.environ), tmp_path / "y.log", timeout=30)
    assert crash.status == "fail" and "no CUDA device here" in crash.result


def test_bench_and_smoke_figures(tmp_path):
    rows = [{"config": "wrapped + sdpa", "tokens_per_s": 6660.9, "mfu": 0.368, "ratio": 1.0, "peak_gib": {"2": 22.5, "4": 29.0},
             "recompiles_after_warmup": 0, "effective": {"attn": "sdpa"}, "note": "", "seconds_fixed": 0.1},
            {"config": "default", "tokens_per_s": None, "mfu": None, "ratio": None, "peak_gib": {"2": None},
             "recompiles_after_warmup": 0, "effective": {}, "note": "unresolved"}]
    (tmp_path / "b.json").write_text(json.dumps(rows))
    line, fig = check.bench_figures(tmp_path / "b.json")
    assert line == ("wrapped + sdpa: 6,661 tok/s/GPU, MFU 36.8%, peak 29.0 GiB, 0 recompiles; "
                    "default: unresolved, 0 recompiles")
    assert fig["rows"][0]["peak_gib"] == {"2": 22.5, "4": 29.0} and "seconds_fixed" not in fig["rows"][0]
    log = tmp_path / "smoke.log"
    log.write_text("[1/7] 00_setup.ipynb done in 20s\nnoise\n[2/7] 01_data_curation.ipynb done in 11s\n")
    assert check.smoke_figures(log) == {"notebooks": {"00_setup": 20, "01_data_curation": 11}}


def test_a_spent_budget_still_writes_a_complete_summary(tmp_path):
    rc = check.main(["--cpu", "--out", str(tmp_path), "--budget", "1"])
    s = json.loads((tmp_path / "summary.json").read_text())
    assert rc == 1 and s["complete"] and s["mode"] == "cpu" and s["passed"] == 0
    assert [st["name"] for st in s["steps"]] == ["setup", "gpu_smoke", "bench_sft", "bench_dpo", "equivalence", "judge"]
    assert all(st["status"] == "skipped" and st["result"].startswith("budget spent") for st in s["steps"])


def test_unknown_step_is_named(tmp_path):
    with pytest.raises(SystemExit, match="unknown step"):
        check.main(["--cpu", "--out", str(tmp_path), "--only", "bench"])


@pytest.mark.slow
def test_cpu_mode_runs_every_step_and_writes_a_complete_summary(tmp_path):
    """The command the docs give, in CPU mode: every step runs for real (notebook 00, both benchmarks at a small
    CPU shape, the equivalence and the judge path) and the summary has each step's figures."""
    env = {**os.environ, "PYTHON": sys.executable, "MED42_OUTPUTS": str(tmp_path / "outputs")}
    r = subprocess.run(["bash", str(PERF / "gpu_check"), "--cpu", "--out", str(tmp_path / "out")], env=env,
                       capture_output=True, text=True, timeout=1500)
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert s["complete"] and s["mode"] == "cpu" and s["passed"] == 6
    steps = {st["name"]: st for st in s["steps"]}
    assert steps["setup"]["figures"]["packages"]["trl"]
    assert list(steps["gpu_smoke"]["figures"]["notebooks"]) == ["00_setup"]
    for name, configs in (("bench_sft", check.SFT_CONFIGS), ("bench_dpo", check.DPO_CONFIGS)):
        rows = steps[name]["figures"]["rows"]
        assert [r["config"] for r in rows] == configs
        assert all(r["recompiles_after_warmup"] == 0 for r in rows)
    cases = steps["equivalence"]["figures"]["cases"]
    assert all(c["ok"] and c["device"] == "cpu" for c in cases)
    judge = steps["judge"]["figures"]
    assert all(judge["render_checks"].values()) and set(judge["logprob_verdicts"]) <= {"A", "B"}
    for st in s["steps"]:
        assert (tmp_path / "out" / st["log"]).read_text().strip()
    assert "summary (cpu" in r.stdout
