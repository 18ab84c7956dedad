"""The SLURM path against a real SLURM (tests/realslurm.py: slurmctld + two slurmd on this host, accounting off).

Each test leaves the cluster empty (no job queued or running) for the next one.
"""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.slurm


def test_the_cluster_has_two_nodes_with_their_own_names_and_addresses(real_slurm, tmp_path):
    """Both nodes answer one two-node step, each with its own hostname and an address the other resolves;
    accounting is off as configured."""
    script = tmp_path / "hello.sh"
    script.write_text("#!/bin/bash\nsrun bash -c 'echo $SLURM_PROCID $(hostname) $(getent hosts med42a1 med42a2 | "
                      "tr -s \" \" | tr \"\\n\" \" \")'\n")
    r = real_slurm.run(["sbatch", "--parsable", "--wait", "-N2", "--ntasks-per-node=1",
                        f"--output={tmp_path}/hello-%j.out", str(script)], timeout=60)
    assert r.returncode == 0, r.stderr
    out = sorted((tmp_path / f"hello-{r.stdout.strip()}.out").read_text().splitlines())
    assert [line.split()[:2] for line in out] == [["0", "med42a1"], ["1", "med42a2"]]
    addrs = {line.split()[2:][i]: line.split()[2:][i + 1] for line in out[:1] for i in (0, 2)}
    assert set(addrs) == {real_slurm.addrs["med42a1"], real_slurm.addrs["med42a2"]}
    sacct = real_slurm.run(["sacct", "-j", r.stdout.strip()])
    assert sacct.returncode != 0 and "accounting storage is disabled" in sacct.stderr
