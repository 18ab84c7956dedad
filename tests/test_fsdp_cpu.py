"""The CPU-FSDP shim engages only under `accelerate launch` with FSDP on several CPU processes.

The engaged path is proven end to end by the two-process launches in test_sft.py and test_dpo_fsdp.py
(their manifests record FSDP and the wrapped module count); here, the cases where it must stay off.
"""
from __future__ import annotations

import pytest

from med42_utils.fsdp_cpu import enable_cpu_fsdp


@pytest.mark.parametrize(
    "env",
    [{}, {"ACCELERATE_USE_FSDP": "false", "WORLD_SIZE": "2"}, {"ACCELERATE_USE_FSDP": "true", "WORLD_SIZE": "1"}],
)
def test_stays_off_outside_multi_process_fsdp_launches(monkeypatch, env):
    monkeypatch.delenv("ACCELERATE_USE_FSDP", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert enable_cpu_fsdp() is False
