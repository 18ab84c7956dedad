"""Test set-up: offline by construction, runs written to a temporary outputs root, and one shared
size=tiny run of every notebook."""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
import uuid
from pathlib import Path

import pytest

for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ[var] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# hermetic: no test (or notebook kernel it starts) reads datasets cache files left by earlier code
os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="med42-hf-datasets-")
os.environ.setdefault("MPLBACKEND", "Agg")
# Under pytest-xdist (`make test` runs two workers on the 2-core CI box) each worker, and every kernel, launched
# process and SLURM job it starts, computes on one thread: two workers at torch's default of one thread per core
# oversubscribe the cores and ran the suite slower than one process did.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")
# every run a test makes (and every notebook kernel or launched process, which inherit the environment)
# goes to a temporary outputs root, removed at the end: the repo's outputs/ stays as it was
TEST_OUTPUTS = Path(tempfile.mkdtemp(prefix="med42-test-outputs-"))
os.environ["MED42_OUTPUTS"] = str(TEST_OUTPUTS)
# FAKE, because this machine has no CUDA: the suite runs jobs labelled h100 on CPU (through a CPU accelerate config),
# and preflight refuses a GPU job whose Python has a CPU build of torch. The check itself is tested with explicit
# facts in tests/test_cluster_plan.py (a CPU build is refused there).
os.environ["MED42_TEST_JOB_TORCH_CUDA"] = "test stand-in"

_connect = socket.socket.connect


def _loopback_only(self, address):
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, str) and host not in ("127.0.0.1", "::1", "localhost", "0.0.0.0") and not host.startswith("127."):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise RuntimeError(f"test tried to reach the network ({address}); tests must stay offline")
    return _connect(self, address)


socket.socket.connect = _loopback_only


@pytest.fixture(scope="session")
def tiny_params():
    from med42_utils.params import load_params

    return load_params("tiny")


@pytest.fixture(scope="session")
def tiny_model_path(tiny_params):
    from med42_utils.tiny_model import resolve_base_model

    return resolve_base_model(tiny_params)


# ---------------------------------------------------------------- the machine's own SLURM stays out of the tests
# A test sees the cluster it sets up (the real test cluster through `real_slurm`, fakes it puts on PATH), never the
# one of the machine it runs on: on a login node, or any machine where `sinfo`/`sacct`/`squeue` answer, or inside
# an allocation, the suite gives the answers it gives on a machine without SLURM (tests/test_machine_slurm.py).
_SLURM_ENV_PREFIXES = ("SLURM_", "SBATCH_", "SALLOC_", "SRUN_")
_NO_SLURM_DIR = Path(tempfile.mkdtemp(prefix="med42-path-without-slurm-"))
_no_slurm_paths: dict[str, str] = {}
# The machine's PATH as the session started: tests on the real test cluster get it back explicitly, since the
# stripped PATH of the other tests has been seen to outlive their teardown (after a Dataset.map with num_proc, not
# reproducible outside the suite), and the cluster's clients are in /usr/bin.
_MACHINE_PATH = os.environ.get("PATH", "")


def path_without_machine_slurm(path: str) -> str:
    """`path` without SLURM's client programs (built once per distinct PATH)."""
    from realslurm import path_without_slurm

    if path not in _no_slurm_paths:
        _no_slurm_paths[path] = path_without_slurm(_NO_SLURM_DIR / str(len(_no_slurm_paths)), path)
    return _no_slurm_paths[path]


@contextlib.contextmanager
def no_machine_slurm():
    """For session fixtures (which run before the per-test one below): no SLURM clients on PATH, no SLURM_* set."""
    saved = dict(os.environ)
    for k in [k for k in os.environ if k.startswith(_SLURM_ENV_PREFIXES)]:
        del os.environ[k]
    os.environ["PATH"] = path_without_machine_slurm(os.environ.get("PATH", ""))
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(autouse=True)
def _no_machine_slurm(request, monkeypatch):
    """Every test but those on the real test cluster starts on a machine without SLURM: no client on PATH, no
    SLURM_* variables of an outer allocation. A test that wants a cluster puts its own fakes first on PATH."""
    if "real_slurm" in request.fixturenames:
        monkeypatch.setenv("PATH", _MACHINE_PATH)
        return
    for k in [k for k in os.environ if k.startswith(_SLURM_ENV_PREFIXES)]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("PATH", path_without_machine_slurm(os.environ.get("PATH", "")))


@pytest.fixture(scope="session")
def notebook_run():
    """Run every notebook in order at size=tiny into outputs/tiny/<unique run>/ once per session.

    Yields (run_name, run_dir); notebook tests assert on the manifests the notebooks wrote.
    """
    from med42_utils.paths import run_dir
    from med42_utils.runner import run_all

    run_name = f"pytest-{uuid.uuid4().hex[:8]}"
    with no_machine_slurm():
        run_all("tiny", run_name)
    yield run_name, run_dir("tiny", run_name)


def _repo_outputs() -> Path:
    from med42_utils.paths import repo_root

    return repo_root() / "outputs"


def snapshot(folder: Path, depth: int = 3) -> dict[str, int]:
    """{path relative to folder: mtime_ns} down to `depth` levels: enough to see a run folder appear or change."""
    out: dict[str, int] = {}
    if not folder.is_dir():
        return out
    stack = [(folder, 0)]
    while stack:
        d, level = stack.pop()
        for p in d.iterdir():
            out[str(p.relative_to(folder))] = p.stat().st_mtime_ns
            if p.is_dir() and not p.is_symlink() and level + 1 < depth:
                stack.append((p, level + 1))
    return out


def pytest_sessionstart(session):
    session.config._med42_outputs_before = snapshot(_repo_outputs())


def pytest_sessionfinish(session, exitstatus):
    """Fail the session if anything under the repo's outputs/ appeared, vanished or changed; drop the temp root."""
    before, after = session.config._med42_outputs_before, snapshot(_repo_outputs())
    if before != after:
        changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        print(f"\nERROR: the tests changed {_repo_outputs()}: {changed[:10]}; tests must write under MED42_OUTPUTS")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if not os.environ.get("MED42_KEEP_TEST_OUTPUTS"):
        shutil.rmtree(TEST_OUTPUTS, ignore_errors=True)
    shutil.rmtree(_NO_SLURM_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def real_slurm():
    """A real SLURM cluster (slurmctld + two slurmd, accounting off) for tests marked `slurm`; see tests/realslurm.py.
    Skips where the packages are missing; fails instead under MED42_REQUIRE_SLURM=1."""
    import realslurm

    path = os.environ.get("PATH", "")
    os.environ["PATH"] = _MACHINE_PATH   # the clients and daemons where the packages put them (see _MACHINE_PATH)
    try:
        cluster = realslurm.session_cluster()
    finally:
        os.environ["PATH"] = path
    yield cluster
    realslurm.stop_session_cluster()


def xdist_group_of(nodeid: str, fixturenames) -> str:
    """Which worker group a test belongs to under `pytest -n N --dist loadgroup` (pytest-xdist): every test on the
    shared tiny run, or on the real test cluster, in one group each, so each session fixture is built once; the
    rest by file, so a module's fixtures are built once too."""
    if "real_slurm" in fixturenames:
        return "real-slurm"
    if "notebook_run" in fixturenames:
        return "notebook-run"
    return nodeid.split("::", 1)[0]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """A test marked `slurm` runs against the real cluster: it must use the real_slurm fixture. Each test gets its
    xdist group (xdist_group_of)."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        if item.get_closest_marker("slurm") and "real_slurm" not in names:
            raise pytest.UsageError(f"{item.nodeid} is marked slurm but does not use the real_slurm fixture")
        item.add_marker(pytest.mark.xdist_group(xdist_group_of(item.nodeid, names)))
