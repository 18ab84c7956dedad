"""Append-only JSONL cache of judgments, keyed by (question id, model pair, order, judge).

Each judgment is one line, written and fsync'd as soon as its batch is judged, so a run killed at any
moment loses at most the batch in flight. On open, a torn last line (a kill mid-write) is cut off
and its judgment is simply redone; keys already present are never judged or written again.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable


def judgment_key(rec: dict) -> tuple:
    """(question_id, model pair sorted, order 'AB'|'BA', judge)."""
    return (str(rec["question_id"]), tuple(rec["pair"]), rec["order"], rec["judge"])


class JudgmentCache:
    """Load once, then `has(key)` / `append(records)`; `records` holds everything, first copy wins."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.records: list[dict] = []
        self._keys: set[tuple] = set()
        self.torn_bytes = 0
        self.bad_lines = 0
        self.duplicates = 0
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):  # killed mid-write: drop the partial line, it will be redone
            cut = data.rfind(b"\n") + 1
            self.torn_bytes = len(data) - cut
            with open(self.path, "r+b") as f:
                f.truncate(cut)
            data = data[:cut]
        for line in data.decode("utf-8", errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                key = judgment_key(rec)
            except (ValueError, KeyError, TypeError):
                self.bad_lines += 1
                continue
            if key in self._keys:
                self.duplicates += 1
                continue
            self._keys.add(key)
            self.records.append(rec)

    def __len__(self) -> int:
        return len(self.records)

    def has(self, key: tuple) -> bool:
        return key in self._keys

    def append(self, records: Iterable[dict]) -> int:
        """Write the new ones (by key) and fsync; returns how many were written."""
        new = []
        for rec in records:
            key = judgment_key(rec)
            if key not in self._keys:
                self._keys.add(key)
                new.append(rec)
        if not new:
            return 0
        blob = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in new)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        self.records.extend(new)
        return len(new)

    def stats(self) -> dict:
        return {"judgments": len(self.records), "torn_bytes_dropped": self.torn_bytes,
                "unreadable_lines": self.bad_lines, "duplicate_lines": self.duplicates}
