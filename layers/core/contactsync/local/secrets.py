"""Local secrets: one JSON file under the home, readable by its owner only."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path


class LocalSecretStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def _load(self) -> dict[str, dict[str, str]]:
        if not self.path.exists():
            return {}
        data: dict[str, dict[str, str]] = json.loads(self.path.read_text(encoding="utf-8"))
        return data

    def _save(self, data: dict[str, dict[str, str]]) -> None:
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
        tmp.replace(self.path)

    def get(self, ref: str) -> dict[str, str]:
        with self._lock:
            return dict(self._load()[ref])

    def put(self, ref: str, values: dict[str, str]) -> None:
        with self._lock:
            data = self._load()
            data[ref] = dict(values)
            self._save(data)

    def delete(self, ref: str) -> None:
        with self._lock:
            data = self._load()
            if data.pop(ref, None) is not None:
                self._save(data)
