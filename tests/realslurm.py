"""A real SLURM cluster for the tests: Debian's slurmctld + two slurmd + munged on this host.

What it starts (all state in one temporary folder, all of it stopped and removed after the session):
- munged with its own key and socket (AuthInfo=socket=...), so it never touches a system munge;
- slurmctld in this network namespace, listening on a free port of a private bridge address (10.242.X.1);
- two slurmd, `<prefix>1` and `<prefix>2`, each in its own network namespace (`ip netns` + a veth on the
  bridge, address 10.242.X.11 / .12) and its own UTS namespace (hostname = node name). Inside each namespace
  /etc/hosts (from /etc/netns/<ns>/hosts) resolves both node names. Own addresses matter: two nodes sharing
  one network make torch's c10d rendezvous take both for the store host and race for its port;
- one partition (default) of both nodes, CPUs = this machine's cores each, `gres gpu:8` on placeholder files,
  AccountingStorageType=accounting_storage/none (as on many small clusters: `sacct` answers
  "Slurm accounting storage is disabled"), MinJobAge=MIN_JOB_AGE seconds, KillWait=2.

Needs root (network namespaces) and the packages slurmctld, slurmd, slurm-client, munge, iproute2.
Where they are missing, tests marked `slurm` skip with the reason; with MED42_REQUIRE_SLURM=1 they fail.

Interface (session fixture `real_slurm`, registered in tests/conftest.py, returns a RealSlurm):

    def test_x(real_slurm, monkeypatch):
        real_slurm.use(monkeypatch)        # SLURM_CONF, PATH (this Python first), MED42_POLL_SECONDS, no SLURM_JOB_*
        real_slurm.nodes                   # ["med42a1", "med42a2"]  (node names; real_slurm.partition == "med42")
        real_slurm.cpus_per_node           # CPUs each node offers (this machine's cores)
        real_slurm.env                     # the variables to point sbatch/squeue/srun/scontrol at it
        real_slurm.run(["squeue", "-t", "all"])   # any client command against it (CompletedProcess)
        real_slurm.next_job_id()           # the controller's next job id: count submissions (NEXT_JOB_ID)
        real_slurm.job(job_id)             # `scontrol show job` as a dict ({} once the record is purged)
        real_slurm.wait_gone(job_id)       # until the controller has forgotten the job (after MinJobAge)
        with real_slurm.config(MinJobAge=2): ...   # change slurm.conf keys for a block (scontrol reconfigure)
        real_slurm.cancel_all()            # scancel every job (tests leave the cluster empty)

A two-node allocation: `salloc --nodes=2 --no-shell` (or `salloc -N2 cmd`, which runs cmd here with
SLURM_JOB_ID set; srun inside then starts one task per node). Jobs run as root with this process's environment
(sbatch exports it), so PYTHONPATH/HF_HUB_OFFLINE reach them. Minimum `--time` SLURM accepts is one minute;
slurmctld checks time limits about every 30 s (OverTimeLimit=0, KillWait=2).
"""
from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BINARIES = ["slurmctld", "slurmd", "munged", "sbatch", "squeue", "scontrol", "srun", "salloc", "scancel", "sinfo",
            "ip", "unshare", "nsenter"]
PACKAGES = "slurmctld slurmd slurm-client munge iproute2 util-linux"
MIN_JOB_AGE = 30
GPUS_PER_NODE = 8
PARTITION = "med42"
LOCK = Path(tempfile.gettempdir()) / "med42-realslurm.lock"
REGISTRY = Path(tempfile.gettempdir()) / "med42-realslurm-clusters"   # one JSON per running cluster (for reaping)


class SlurmUnavailable(RuntimeError):
    """This machine cannot run the test cluster; the message says why and what to install."""


def missing_reason() -> str | None:
    """Why the real SLURM cannot start here (None when it can)."""
    missing = [b for b in BINARIES if shutil.which(b) is None and not Path("/usr/sbin", b).exists()]
    if missing:
        return (f"real SLURM not installed ({', '.join(missing)} missing): as root, "
                f"`apt-get install -y {PACKAGES}` (Debian/Ubuntu); see docs/slurm-tests.md")
    if os.geteuid() != 0:
        return "the real-SLURM test cluster needs root (it puts each slurmd in its own network namespace)"
    return None


def _sbin(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def _sh(cmd: list[str], check: bool = True, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        raise SlurmUnavailable(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip() or r.stdout.strip()}")
    return r


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _free_subnet() -> int:
    used = _sh(["ip", "-o", "-4", "addr"], check=False).stdout
    for x in range(10, 250):
        if f"10.242.{x}." not in used:
            return x
    raise SlurmUnavailable("no free 10.242.X.0/24 subnet for the test cluster's bridge")


class RealSlurm:
    """A running test cluster; see the module docstring for the interface."""

    def __init__(self, root: Path | None = None, prefix: str | None = None):
        tag = f"{os.getpid() % 100000:05d}"
        self.prefix = prefix or "med42a"
        self.tag = tag
        self.root = Path(root or tempfile.mkdtemp(prefix="med42-slurm-"))
        self.nodes = [f"{self.prefix}1", f"{self.prefix}2"]
        self.partition = PARTITION
        self.cpus_per_node = os.cpu_count() or 1
        self.gpus_per_node = GPUS_PER_NODE
        self.conf = self.root / "slurm.conf"
        self.bridge = f"m42br{tag}"
        self.netns = {n: f"m42{tag}-{i}" for i, n in enumerate(self.nodes, 1)}
        self.procs: dict[str, subprocess.Popen] = {}
        self.settings: dict[str, str] = {}
        self.env = {"SLURM_CONF": str(self.conf)}

    # ------------------------------------------------------------ start / stop

    def start(self) -> "RealSlurm":
        reap_stale()
        with open(LOCK, "w") as lock:       # two sessions on one host must not pick the same subnet
            fcntl.flock(lock, fcntl.LOCK_EX)
            self.subnet = _free_subnet()
            self.ctl_addr = f"10.242.{self.subnet}.1"
            self.addrs = {n: f"10.242.{self.subnet}.{10 + i}" for i, n in enumerate(self.nodes, 1)}
            self._register()
            self._network()
        try:
            self._munge()
            self._write_config()
            self._daemons()
            self._register([self.munged_pid, *(p.pid for p in self.procs.values())])
            self._wait_idle()
        except BaseException:
            self.stop()
            raise
        return self

    def _register(self, pids: list[int] = ()) -> None:
        REGISTRY.mkdir(exist_ok=True)
        (REGISTRY / f"{self.tag}.json").write_text(json.dumps({
            "owner": os.getpid(), "root": str(self.root), "bridge": self.bridge, "netns": list(self.netns.values()),
            "pids": list(pids)}))

    def _network(self) -> None:
        _sh(["ip", "link", "add", self.bridge, "type", "bridge"])
        _sh(["ip", "addr", "add", f"{self.ctl_addr}/24", "dev", self.bridge])
        _sh(["ip", "link", "set", self.bridge, "up"])
        hosts = "127.0.0.1 localhost\n" + "".join(f"{a} {n}\n" for n, a in self.addrs.items())
        for i, (node, ns) in enumerate(self.netns.items(), 1):
            host_end, ns_end = f"m42v{self.tag}{i}", f"m42p{self.tag}{i}"
            _sh(["ip", "netns", "add", ns])
            _sh(["ip", "link", "add", host_end, "type", "veth", "peer", "name", ns_end])
            _sh(["ip", "link", "set", ns_end, "netns", ns])
            _sh(["ip", "link", "set", host_end, "master", self.bridge])
            _sh(["ip", "link", "set", host_end, "up"])
            for cmd in (["ip", "addr", "add", f"{self.addrs[node]}/24", "dev", ns_end],
                        ["ip", "link", "set", ns_end, "up"], ["ip", "link", "set", "lo", "up"]):
                _sh(["ip", "netns", "exec", ns, *cmd])
            etc = Path("/etc/netns") / ns       # `ip netns exec` bind-mounts these over /etc
            etc.mkdir(parents=True, exist_ok=True)
            (etc / "hosts").write_text(hosts)

    def _munge(self) -> None:
        m = self.root / "munge"
        m.mkdir()
        m.chmod(0o755)
        key = m / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        self.munge_socket = m / "munge.socket"
        r = _sh([_sbin("munged"), "--force", f"--socket={self.munge_socket}", f"--key-file={key}",
                 f"--pid-file={m / 'munged.pid'}", f"--log-file={m / 'munged.log'}", f"--seed-file={m / 'seed'}"],
                check=False)
        if r.returncode != 0:
            raise SlurmUnavailable(f"munged did not start: {r.stderr.strip()}")
        self.munged_pid = int((m / "munged.pid").read_text())

    def _write_config(self) -> None:
        dev = self.root / "dev"
        dev.mkdir(exist_ok=True)
        for i in range(self.gpus_per_node):
            (dev / f"nvidia{i}").touch()     # placeholder "GPUs": slurm only hands out their indices
        (self.root / "state").mkdir(exist_ok=True)
        for node in self.nodes:
            (self.root / f"spool-{node}").mkdir(exist_ok=True)
        self.ctl_port = _free_port(self.ctl_addr)
        self.settings = {
            "ClusterName": f"med42test{self.tag}",
            "SlurmctldHost": f"{socket.gethostname()}({self.ctl_addr})",
            "SlurmctldPort": str(self.ctl_port),
            "SlurmdPort": "6818",                 # one per network namespace
            "SlurmUser": "root", "SlurmdUser": "root",
            "AuthType": "auth/munge", "CredType": "cred/munge",
            # cred_expire: a requeued job waits this long before it starts again (default 120 s; read at start only)
            "AuthInfo": f"socket={self.munge_socket},cred_expire=10",
            "SchedulerParameters": "bf_interval=5",  # start a requeued job soon after it may start again
            "StateSaveLocation": str(self.root / "state"),
            "SlurmdSpoolDir": str(self.root / "spool-%n"),
            "SlurmctldPidFile": str(self.root / "slurmctld.pid"),
            "SlurmdPidFile": str(self.root / "slurmd-%n.pid"),
            "SlurmctldLogFile": str(self.root / "slurmctld.log"),
            "SlurmdLogFile": str(self.root / "slurmd-%n.log"),
            "SlurmctldDebug": "info", "SlurmdDebug": "info",
            "AccountingStorageType": "accounting_storage/none",
            "JobAcctGatherType": "jobacct_gather/none",
            "JobCompType": "jobcomp/none",
            "ProctrackType": "proctrack/linuxproc",
            "TaskPlugin": "task/none",
            "MpiDefault": "none",
            "SwitchType": "switch/none",
            "SchedulerType": "sched/backfill",
            "SelectType": "select/cons_tres",
            "SelectTypeParameters": "CR_Core",
            "GresTypes": "gpu",
            "ReturnToService": "2",
            "MinJobAge": str(MIN_JOB_AGE),
            "KillWait": "2",
            "OverTimeLimit": "0",
            "InactiveLimit": "0",
            "SlurmdTimeout": "60",
            "MessageTimeout": "20",
            "FirstJobId": "1",
        }
        self._write_conf_files()

    def _write_conf_files(self) -> None:
        lines = [f"{k}={v}" for k, v in self.settings.items()]
        for node, addr in self.addrs.items():
            lines.append(f"NodeName={node} NodeHostname={node} NodeAddr={addr} CPUs={self.cpus_per_node} "
                         f"Gres=gpu:{self.gpus_per_node} State=UNKNOWN")
        lines.append(f"PartitionName={self.partition} Nodes={','.join(self.nodes)} Default=YES "
                     "MaxTime=INFINITE State=UP")
        self.conf.write_text("\n".join(lines) + "\n")
        gpus = f"{self.root}/dev/nvidia[0-{self.gpus_per_node - 1}]"
        (self.root / "gres.conf").write_text(f"NodeName={','.join(self.nodes)} Name=gpu File={gpus}\n")

    def _daemons(self) -> None:
        env = dict(os.environ, SLURM_CONF=str(self.conf))
        for k in [k for k in env if k.startswith("SLURM_") and k != "SLURM_CONF"]:
            env.pop(k)
        out = open(self.root / "daemons.out", "ab")
        self.procs["slurmctld"] = subprocess.Popen(
            [_sbin("slurmctld"), "-D", "-i", "-f", str(self.conf)], env=env, stdout=out, stderr=out,
            start_new_session=True)
        for node, ns in self.netns.items():
            # not `ip netns exec`: it remounts /sys without the cgroup mounts slurmd needs
            hosts = Path("/etc/netns") / ns / "hosts"
            inner = (f"mount --bind {hosts} /etc/hosts && hostname {node} && "
                     f"exec {_sbin('slurmd')} -D -f {self.conf}")
            self.procs[node] = subprocess.Popen(
                ["nsenter", f"--net=/run/netns/{ns}", "unshare", "--mount", "--uts", "sh", "-c", inner], env=env,
                stdout=out, stderr=out, start_new_session=True)

    def _wait_idle(self, timeout: float = 60) -> None:
        t0 = time.time()
        states = ""
        while time.time() - t0 < timeout:
            for name, p in self.procs.items():
                if p.poll() is not None:
                    raise SlurmUnavailable(f"{name} exited {p.returncode} while starting; {self.logs()}")
            r = self.run(["sinfo", "-h", "-N", "-o", "%N %t"])
            states = r.stdout.strip()
            got = dict(line.split() for line in states.splitlines() if len(line.split()) == 2)
            if r.returncode == 0 and all(got.get(n) == "idle" for n in self.nodes):
                return
            time.sleep(0.5)
        raise SlurmUnavailable(f"the test cluster's nodes are not idle after {timeout:.0f} s (sinfo: {states!r}); "
                               f"{self.logs()}")

    def logs(self, lines: int = 15) -> str:
        out = []
        for f in [self.root / "daemons.out", self.root / "slurmctld.log",
                  *(self.root / f"slurmd-{n}.log" for n in self.nodes), self.root / "munge" / "munged.log"]:
            if f.is_file():
                tail = "\n  ".join(f.read_text(errors="replace").splitlines()[-lines:])
                out.append(f"{f}:\n  {tail}")
        return "\n".join(out) or f"(no logs under {self.root})"

    def cancel_all(self, timeout: float = 20) -> None:
        r = self.run(["squeue", "-h", "-o", "%i"])
        ids = r.stdout.split()
        if ids:
            self.run(["scancel", *ids])
            t0 = time.time()
            while time.time() - t0 < timeout and self.run(["squeue", "-h", "-o", "%i"]).stdout.split():
                time.sleep(0.3)

    def stop(self) -> None:
        """Cancel jobs, stop the daemons and every process left in the nodes' namespaces, remove the network."""
        with contextlib.suppress(Exception):
            if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
                self.cancel_all(timeout=10)
        for name, p in self.procs.items():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
        for ns in self.netns.values():          # slurmstepd and job processes outlive slurmd
            pids = _sh(["ip", "netns", "pids", ns], check=False).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            _sh(["ip", "netns", "del", ns], check=False)
            shutil.rmtree(Path("/etc/netns") / ns, ignore_errors=True)
        _sh(["ip", "link", "del", self.bridge], check=False)
        if getattr(self, "munged_pid", None):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.munged_pid, signal.SIGTERM)
        (REGISTRY / f"{self.tag}.json").unlink(missing_ok=True)
        if not os.environ.get("MED42_KEEP_SLURM"):
            shutil.rmtree(self.root, ignore_errors=True)

    # ------------------------------------------------------------ using it

    def run(self, cmd: list[str], **kw) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
        env.update(self.env, **kw.pop("env", {}))
        return subprocess.run(cmd, capture_output=True, text=True, env=env, **kw)

    def use(self, monkeypatch, poll_seconds: float = 0.3) -> "RealSlurm":
        """Point this test's sbatch/squeue/srun at the cluster: SLURM_CONF, this Python's bin first on PATH,
        a short MED42_POLL_SECONDS and no SLURM_JOB_* from an outer allocation."""
        for k in [k for k in os.environ if k.startswith("SLURM_") or k.startswith("SBATCH_")
                  or k.startswith("SALLOC_") or k.startswith("SRUN_")]:
            monkeypatch.delenv(k)
        monkeypatch.setenv("SLURM_CONF", str(self.conf))
        monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
        monkeypatch.setenv("MED42_POLL_SECONDS", str(poll_seconds))
        return self

    def next_job_id(self) -> int:
        r = self.run(["scontrol", "show", "config"])
        m = re.search(r"^NEXT_JOB_ID\s*=\s*(\d+)", r.stdout, re.M)
        if not m:
            raise RuntimeError(f"scontrol show config has no NEXT_JOB_ID: {r.stdout[:300]}{r.stderr}")
        return int(m.group(1))

    def job(self, job_id: str | int) -> dict[str, str]:
        """`scontrol show job -o ID` as {key: value}; {} once the controller has purged the record."""
        r = self.run(["scontrol", "show", "job", "-o", str(job_id)])
        if r.returncode != 0:
            return {}
        return dict(re.findall(r"(\w[\w:/]*)=(\S*)", r.stdout))

    def wait_state(self, job_id: str | int, states: set[str], timeout: float = 60) -> str:
        t0 = time.time()
        state = ""
        while time.time() - t0 < timeout:
            state = self.job(job_id).get("JobState", "")
            if state in states:
                return state
            time.sleep(0.2)
        raise TimeoutError(f"job {job_id} is {state or 'gone'}, not {states}, after {timeout:.0f} s")

    def wait_gone(self, job_id: str | int, timeout: float = MIN_JOB_AGE + 60) -> None:
        t0 = time.time()
        while time.time() - t0 < timeout:
            if not self.job(job_id):
                return
            time.sleep(0.5)
        raise TimeoutError(f"the controller still knows job {job_id} after {timeout:.0f} s")

    @contextlib.contextmanager
    def config(self, **settings):
        """Change slurm.conf keys (e.g. MinJobAge=2) for a block: rewrite, `scontrol reconfigure`, restore."""
        old = dict(self.settings)
        self.settings.update({k: str(v) for k, v in settings.items()})
        self._reconfigure()
        try:
            yield self
        finally:
            self.settings = old
            self._reconfigure()

    def _reconfigure(self) -> None:
        self._write_conf_files()
        r = self.run(["scontrol", "reconfigure"])
        if r.returncode != 0:
            raise RuntimeError(f"scontrol reconfigure failed: {r.stderr.strip()}")
        time.sleep(1)


SLURM_CLIENTS = {"sbatch", "squeue", "srun", "salloc", "scontrol", "sinfo", "scancel", "sacct", "sacctmgr", "sattach",
                 "sbcast", "scrontab", "sdiag", "sprio", "sreport", "sshare", "sstat", "strigger", "sview"}


def path_without_slurm(folder: Path, path: str | None = None) -> str:
    """`path` (default: this PATH) without SLURM's clients, for tests of a machine without SLURM on one where the
    packages are installed or a cluster answers. A directory holding none of them stays as it is; one that holds
    any (/usr/bin; /bin is /usr/bin on Debian, so it cannot simply be dropped) is replaced by a folder under
    `folder` with links to its other programs."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, d in enumerate((os.environ.get("PATH", "") if path is None else path).split(os.pathsep)):
        if not d or not os.path.isdir(d):
            continue
        names = os.listdir(d)
        if not SLURM_CLIENTS.intersection(names):
            out.append(d)
            continue
        farm = folder / f"{i}-{Path(d).name or 'root'}"
        farm.mkdir(exist_ok=True)
        for name in names:
            target, link = os.path.join(d, name), farm / name
            if name in SLURM_CLIENTS or link.exists() or link.is_symlink() or not os.access(target, os.X_OK):
                continue
            link.symlink_to(target)
        out.append(str(farm))
    return os.pathsep.join(out)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def reap_stale() -> None:
    """Remove clusters whose pytest process died without stopping them (killed, or interrupted twice)."""
    if not REGISTRY.is_dir():
        return
    for rec_path in REGISTRY.glob("*.json"):
        try:
            rec = json.loads(rec_path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if _alive(int(rec.get("owner", 0))):
            continue
        for pid in rec.get("pids", []):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        for ns in rec.get("netns", []):
            for pid in _sh(["ip", "netns", "pids", ns], check=False).stdout.split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            _sh(["ip", "netns", "del", ns], check=False)
            shutil.rmtree(Path("/etc/netns") / ns, ignore_errors=True)
        _sh(["ip", "link", "del", rec.get("bridge", "")], check=False)
        if rec.get("root", "").startswith(tempfile.gettempdir()):
            shutil.rmtree(rec["root"], ignore_errors=True)
        rec_path.unlink(missing_ok=True)


def require() -> bool:
    return os.environ.get("MED42_REQUIRE_SLURM", "") not in ("", "0")


_CLUSTER: RealSlurm | None = None
_FAILED = ""


def session_cluster() -> RealSlurm:
    """Start the cluster once per session (skip, or fail under MED42_REQUIRE_SLURM=1, where it cannot run)."""
    import pytest

    global _CLUSTER, _FAILED
    if _CLUSTER is not None:
        return _CLUSTER
    reason = missing_reason()
    if reason:
        if require():
            pytest.fail(f"MED42_REQUIRE_SLURM=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    if _FAILED:                      # tried once this session: do not start (and fail) it for every test
        pytest.fail(f"the real-SLURM test cluster did not start: {_FAILED}", pytrace=False)
    try:
        _CLUSTER = RealSlurm().start()
    except SlurmUnavailable as e:
        _FAILED = str(e)
        raise
    atexit.register(stop_session_cluster)   # also when the session ends without fixture teardown
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:   # `timeout`/kill: stop the cluster, then die as asked
        signal.signal(signal.SIGTERM, _stop_and_die)
    return _CLUSTER


def _stop_and_die(signum, frame) -> None:
    stop_session_cluster()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def stop_session_cluster() -> None:
    global _CLUSTER
    if _CLUSTER is not None:
        _CLUSTER.stop()
        _CLUSTER = None


# One CPU process, no sharding: the accelerate config the jobs in these tests launch with
SINGLE_CPU_CONFIG = """compute_environment: LOCAL_MACHINE
distributed_type: 'NO'
mixed_precision: 'no'
num_machines: 1
num_processes: 1
"""
