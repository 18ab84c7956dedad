"""Test set-up: offline by construction, and one shared size=tiny run of every notebook."""
from __future__ import annotations

import os
import socket
import tempfile
import uuid

import pytest

for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ[var] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# hermetic: no test (or notebook kernel it starts) reads datasets cache files left by earlier code
os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="med42-hf-datasets-")
os.environ.setdefault("MPLBACKEND", "Agg")

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


@pytest.fixture(scope="session")
def notebook_run():
    """Run every notebook in order at size=tiny into outputs/tiny/<unique run>/ once per session.

    Yields (run_name, run_dir); notebook tests assert on the manifests the notebooks wrote.
    """
    from med42_utils.paths import run_dir
    from med42_utils.runner import run_all

    run_name = f"pytest-{uuid.uuid4().hex[:8]}"
    run_all("tiny", run_name)
    yield run_name, run_dir("tiny", run_name)
