"""Wheels for the GPU check machine (see perf/gpu_kit, the command, and docs/gpu-check.md).

That machine has Python 3.12 on x86-64 Linux, a CUDA build of torch and many packages, but no network. This
script, run where pip reaches PyPI, resolves the project's pinned dependencies (pyproject.toml, with the `gpu`
extra) for that machine with pip's own resolver (`pip install --dry-run --report`, metadata only), then keeps
only what the machine lacks, read from perf/gpu_machine_packages.txt:

- a package not on the machine travels;
- a package on the machine stays, unless the project pins another version than the one the list records
  (then the pinned wheel travels: the check runs the project's transformers, not the machine's);
- a package marked `keep` (the CUDA torch and its stack) always stays, whatever the project pins; the
  resolver is told the machine's version, so nothing is chosen that needs another torch.

It downloads those wheels (`pip download --no-deps`, exact versions, binary only) into a git-ignored folder,
removes wheels there that are no longer wanted (two versions of one package would break the install), checks
the total stays under the limit (60 MB by default: a device call carries 64 MiB in all) and prints each wheel
and the size.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MACHINE_LIST = Path(__file__).resolve().parent / "gpu_machine_packages.txt"
WHEELS = ROOT / ".gpu_wheels"
LIMIT_MB = 60.0
PYTHON_VERSION = "3.12"
# manylinux tags pip must be told one by one (it matches N exactly); the machine's glibc is 2.39.
PLATFORMS = ([f"manylinux_2_{n}_x86_64" for n in range(39, 4, -1)]
             + ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"])
EXTRAS = ("gpu",)  # liger-kernel: the 8b/70b defaults use it


def norm(name: str) -> str:
    """PEP 503 name: lower case, runs of -_. as one '-'."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class OnMachine:
    version: str | None  # None: on the machine, version not recorded
    keep: bool = False   # the machine's own build is used whatever the project pins


def read_machine_list(path: Path = MACHINE_LIST) -> dict[str, OnMachine]:
    """`name`, `name==version`, optionally followed by `keep`; '#' starts a comment."""
    out: dict[str, OnMachine] = {}
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)(?:==([^\s=]+))?", words[0])
        if not m or len(words) > 2 or (len(words) == 2 and words[1] != "keep"):
            raise ValueError(f"{path}:{n}: {raw.strip()!r} is not 'name', 'name==version' or either followed by "
                             "'keep'; fix that line")
        name = norm(m.group(1))
        if name in out:
            raise ValueError(f"{path}:{n}: {m.group(1)} is listed twice; keep one line")
        out[name] = OnMachine(m.group(2), len(words) == 2)
    return out


def project_pins(pyproject: Path = ROOT / "pyproject.toml", extras=EXTRAS) -> dict[str, tuple[str, str]]:
    """{normalized name: (name as written, version)} of the project's dependencies and the given extras.
    Every one must be an exact pin (name==version): the kit fetches exact wheels."""
    project = tomllib.loads(pyproject.read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in extras:
        reqs += project.get("optional-dependencies", {}).get(extra, [])
    pins = {}
    for r in reqs:
        m = re.fullmatch(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;,]+)\s*", r)
        if not m:
            raise ValueError(f"{pyproject}: {r!r} is not an exact pin (name==version); the GPU kit needs exact pins")
        pins[norm(m.group(1))] = (m.group(1), m.group(2))
    return pins


def resolver_inputs(pins: dict[str, tuple[str, str]], machine: dict[str, OnMachine]) -> tuple[list[str], list[str]]:
    """Requirements and constraints for resolving on the machine's terms.

    Requirements: the project's pins, with a `keep` package at the machine's version (torch 2.11, not the pin).
    Constraints: every other package whose machine version is recorded and that the project does not pin, so
    the resolver picks what works with the machine's numpy, huggingface-hub, ... as they are."""
    reqs, cons = [], []
    for key, (name, version) in pins.items():
        have = machine.get(key)
        if have and have.keep:
            if have.version:
                reqs.append(f"{name}=={have.version}")
            continue
        reqs.append(f"{name}=={version}")
    for key, have in sorted(machine.items()):
        if have.version and key not in pins:
            cons.append(f"{key}=={have.version}")
    return reqs, cons


def resolve(reqs: list[str], cons: list[str], built: Path, python_version: str = PYTHON_VERSION,
            tries: int = 12) -> list[tuple[str, str]]:
    """(name, version) of everything pip would install for `reqs` under `cons` on the GPU machine (metadata only).

    A dependency published only as a source archive (lm-eval's sqlitedict, rouge-score, word2number) has no
    wheel to match: it is built here into `built` (pure Python only) and the resolution tried again."""
    with tempfile.TemporaryDirectory() as tmp:
        c = Path(tmp) / "constraints.txt"
        c.write_text("\n".join(cons) + "\n")
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed",
               "--only-binary=:all:", "--python-version", python_version, "--implementation", "cp",
               "--abi", "cp" + python_version.replace(".", ""), "--abi", "abi3", "--abi", "none",
               *[a for p in PLATFORMS for a in ("--platform", p)], "--platform", "any",
               "--find-links", str(built), "--report", str(report), "-c", str(c), *reqs]
        for _ in range(tries):
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode == 0:
                break
            err = "\n".join(x for x in r.stderr.splitlines() if not x.startswith("WARNING: Location"))
            m = re.search(r"No matching distribution found for ([A-Za-z0-9._-]+)", err)
            if not m:
                raise SystemExit(f"pip could not resolve the project's pins for the GPU machine "
                                 f"(Python {python_version}, x86-64, with its recorded versions as constraints):\n"
                                 f"{err.strip()}\nFix the pin, or the version recorded in {MACHINE_LIST.name}")
            build_pure_wheel(m.group(1), built)
        else:
            raise SystemExit(f"gave up resolving after building {tries} wheels from source archives")
        data = json.loads(report.read_text())
    return [(i["metadata"]["name"], i["metadata"]["version"]) for i in data["install"]]


def build_pure_wheel(name: str, built: Path) -> Path:
    """Build `name` (latest release) from its source archive into `built`; it must come out pure Python."""
    built.mkdir(parents=True, exist_ok=True)
    before = set(built.glob("*.whl"))
    print(f"{name}: no wheel published; building one from its source archive", flush=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(built), name], check=True)
    new = [p for p in set(built.glob("*.whl")) - before if wheel_key(p)[0] == norm(name)]
    if not new:
        raise SystemExit(f"{name}: pip wheel produced no wheel")
    if not new[0].name.endswith("-none-any.whl"):
        raise SystemExit(f"{name}: built {new[0].name}, which is not pure Python, so it cannot be built here for the "
                         "GPU machine; record the machine's copy in the list or drop the need")
    return new[0]


@dataclass(frozen=True)
class Choice:
    name: str
    version: str
    carry: bool
    why: str


def select(resolved: list[tuple[str, str]], machine: dict[str, OnMachine],
           pins: dict[str, tuple[str, str]]) -> list[Choice]:
    """For each resolved package: carry it or use the machine's, and why (see the module docstring)."""
    out = []
    for name, version in resolved:
        key, have = norm(name), machine.get(norm(name))
        if have is None:
            out.append(Choice(name, version, True, "not on the machine"))
        elif have.keep:
            out.append(Choice(name, version, False, f"machine's own build{' ' + have.version if have.version else ''} (keep)"))
        elif key in pins and have.version and have.version != pins[key][1]:
            out.append(Choice(name, version, True, f"project pins {pins[key][1]}, machine has {have.version}"))
        else:
            seen = have.version or "version not recorded"
            out.append(Choice(name, version, False, f"on the machine ({seen})"))
    return out


def wheel_key(path: Path) -> tuple[str, str]:
    """(normalized name, version) from a wheel's file name."""
    name, version = path.name.split("-")[:2]
    return norm(name), version


def stale_wheels(folder: Path, wanted: list[Choice]) -> list[Path]:
    """Wheels in `folder` that are not exactly one of the wanted (name, version)."""
    want = {(norm(c.name), c.version) for c in wanted if c.carry}
    return [p for p in sorted(folder.glob("*.whl")) if wheel_key(p) not in want]


def size_report(folder: Path, limit_mb: float = LIMIT_MB) -> tuple[list[tuple[str, float]], float]:
    """[(wheel, MB)] largest first and the total MB; SystemExit naming the largest when over `limit_mb`."""
    sizes = sorted(((p.name, p.stat().st_size / 1e6) for p in folder.glob("*.whl")), key=lambda x: -x[1])
    total = sum(mb for _, mb in sizes)
    if total > limit_mb:
        top = ", ".join(f"{n} {mb:.1f} MB" for n, mb in sizes[:5])
        raise SystemExit(f"the wheels in {folder} come to {total:.1f} MB, over the {limit_mb:.0f} MB limit "
                         f"(a device call carries 64 MiB in all). Largest: {top}. Record the machine's version of "
                         f"one of them in {MACHINE_LIST.name} if it has it, or drop what the check does not need.")
    return sizes, total


def download(choices: list[Choice], folder: Path, built: Path, python_version: str = PYTHON_VERSION) -> None:
    todo = [f"{c.name}=={c.version}" for c in choices if c.carry]
    if not todo:
        return
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
           "--python-version", python_version, "--implementation", "cp",
           *[a for p in PLATFORMS for a in ("--platform", p)], "--platform", "any", "--find-links", str(built),
           "-d", str(folder), *todo]
    subprocess.run(cmd, check=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dest", type=Path, default=WHEELS, help=f"wheel folder (default {WHEELS.relative_to(ROOT)})")
    ap.add_argument("--limit-mb", type=float, default=LIMIT_MB)
    ap.add_argument("--machine-list", type=Path, default=MACHINE_LIST)
    ap.add_argument("--list-only", action="store_true", help="resolve and print the choices; download nothing")
    a = ap.parse_args(argv)
    machine, pins = read_machine_list(a.machine_list), project_pins()
    reqs, cons = resolver_inputs(pins, machine)
    built = Path(tempfile.mkdtemp(prefix="gpu_kit_built_"))  # wheels built from source archives
    choices = select(resolve(reqs, cons, built), machine, pins)
    for c in sorted(choices, key=lambda c: (not c.carry, norm(c.name))):
        print(f"{'carry' if c.carry else 'there':5s} {c.name}=={c.version}: {c.why}")
    if a.list_only:
        return 0
    a.dest.mkdir(parents=True, exist_ok=True)
    for p in stale_wheels(a.dest, choices):
        print(f"removing {p.name} (no longer wanted)")
        p.unlink()
    have = {wheel_key(p) for p in a.dest.glob("*.whl")}
    download([c for c in choices if c.carry and (norm(c.name), c.version) not in have], a.dest, built)
    missing = [c for c in choices if c.carry and (norm(c.name), c.version) not in {wheel_key(p) for p in a.dest.glob("*.whl")}]
    if missing:
        raise SystemExit(f"no wheel arrived for {[f'{c.name}=={c.version}' for c in missing]}")
    sizes, total = size_report(a.dest, a.limit_mb)
    print(f"\n{len(sizes)} wheels in {a.dest}:")
    for n, mb in sizes:
        print(f"  {mb:7.2f} MB  {n}")
    print(f"total {total:.1f} MB (limit {a.limit_mb:.0f} MB). On the GPU machine: bash perf/gpu_check --out <folder>, "
          f"carrying {a.dest.relative_to(ROOT) if a.dest.is_relative_to(ROOT) else a.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
