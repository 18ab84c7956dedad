"""Mutation testing of one module against its own tests, with mutmut (a habit, not a CI gate: docs/testing.md).

    python tools/mutate.py med42_utils/data/dedup.py            # its tests from pyproject's [tool.med42.mutation]
    python tools/mutate.py med42_utils/data/dedup.py --tests tests/test_data_dedup.py --max-children 2
    make mutate MODULE=med42_utils/data/dedup.py

mutmut runs in a scratch copy of the checkout (.mutmut/<module>/, git-ignored), with a [tool.mutmut] section written
for this module: only it is mutated, only its test files run (without the `slow` and `slurm` tests). Each run starts
from fresh mutants: mutmut 3.8.1 keeps an old "survived" verdict when only the tests changed, so an incremental
re-run would still list survivors the new tests kill. `--mutants NAME...` retests just those (the others' results
kept); `--keep-results` keeps every earlier verdict (quick, but stale after a test change). At the end it prints the survivors; `mutmut show NAME` (run in that
folder) shows one mutant's diff. Exit status 0 whatever survived: read the survivors, then add a test or explain
why the mutant changes nothing observable.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRATCH = ROOT / ".mutmut"
TESTS_MARKERS = "not slow and not slurm"


def mutation_table(pyproject: Path = ROOT / "pyproject.toml") -> dict[str, list[str]]:
    """{module path: [its test files]} from [tool.med42.mutation.modules]."""
    data = tomllib.loads(pyproject.read_text())
    return data.get("tool", {}).get("med42", {}).get("mutation", {}).get("modules", {})


def tests_for(module: str, tests: list[str] | None, table: dict[str, list[str]]) -> list[str]:
    """The test files to run against `module`: those given, else the table's; a clear error otherwise."""
    if not (ROOT / module).is_file() or not module.endswith(".py"):
        raise SystemExit(f"{module}: not a Python file of this checkout (e.g. med42_utils/data/dedup.py)")
    chosen = tests or table.get(module)
    if not chosen:
        raise SystemExit(f"{module} has no test files in pyproject.toml [tool.med42.mutation.modules]; add it there "
                         f"or pass --tests tests/test_x.py (modules listed: {', '.join(sorted(table))})")
    missing = [t for t in chosen if not (ROOT / t).is_file()]
    if missing:
        raise SystemExit(f"test files not found for {module}: {missing}")
    return list(chosen)


def mutmut_section(module: str, tests: list[str], also_copy: list[str]) -> str:
    """The [tool.mutmut] section for one module (mutmut reads pyproject.toml in its working folder)."""
    def arr(xs):
        return "[" + ", ".join(f'"{x}"' for x in xs) + "]"

    return ("\n[tool.mutmut]\n"
            'source_paths = ["med42_utils"]\n'
            f"only_mutate = {arr([module])}\n"
            f"pytest_add_cli_args_test_selection = {arr(tests)}\n"
            f'pytest_add_cli_args = ["-p", "no:cacheprovider", "-m", "{TESTS_MARKERS}"]\n'
            f"also_copy = {arr(also_copy)}\n")


def scratch_copy(module: str, tests: list[str]) -> Path:
    """Refresh .mutmut/<module>/ from the checkout (tracked and untracked, not ignored files)."""
    work = SCRATCH / module.removesuffix(".py").replace("/", ".")
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.splitlines()
    for f in files:
        src, dst = ROOT / f, work / f
        if not src.is_file() or f.startswith(".mutmut/"):
            continue
        if not dst.exists() or dst.stat().st_mtime_ns != src.stat().st_mtime_ns:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    top = sorted({f.split("/")[0] for f in files} - {"med42_utils", "tests", "pyproject.toml", ".mutmut"})
    text = (ROOT / "pyproject.toml").read_text()
    (work / "pyproject.toml").write_text(text + mutmut_section(module, tests, top))
    return work


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("module", help="e.g. med42_utils/data/dedup.py")
    ap.add_argument("--tests", nargs="+", help="test files (default: the module's in pyproject.toml)")
    ap.add_argument("--max-children", type=int, default=2, help="parallel test processes (default 2)")
    ap.add_argument("--mutants", nargs="+", default=[],
                    help="only these mutants (names or globs as `mutmut results` lists them), e.g. to retest survivors")
    ap.add_argument("--keep-results", action="store_true",
                    help="keep earlier verdicts (mutmut does not retest a survivor when only the tests changed)")
    a = ap.parse_args(argv)
    if shutil.which("mutmut", path=os.path.dirname(sys.executable)) is None:
        raise SystemExit("mutmut is not installed in this environment: pip install -e '.[mutation]'")
    tests = tests_for(a.module, a.tests, mutation_table())
    work = scratch_copy(a.module, tests)
    if not (a.mutants or a.keep_results):
        shutil.rmtree(work / "mutants", ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MED42_ROOT")}
    # one thread per test process: mutmut forks each mutant from a process that already ran torch, and a forked
    # OpenMP pool hangs (reported as a timeout whatever the mutant does)
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    mutmut = os.path.join(os.path.dirname(sys.executable), "mutmut")
    print(f"mutmut on {a.module} against {' '.join(tests)} in {work}", flush=True)
    run = subprocess.run([mutmut, "run", "--max-children", str(a.max_children), *a.mutants], cwd=work, env=env)
    if run.returncode != 0:
        return run.returncode
    subprocess.run([mutmut, "results"], cwd=work, env=env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
