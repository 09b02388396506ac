"""The local runtime's home ($CONTACTSYNC_HOME, default ~/.contactsync; --home overrides):
the SQLite store, the configuration and the secrets file."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field

from contactsync.domain.base import Model
from contactsync.local.secrets import LocalSecretStore
from contactsync.store.sqlite import SQLiteStore

DEFAULT_HOME = Path("~/.contactsync")


class LocalConfig(Model):
    org_id: str
    admin_user_id: str
    sandbox_file: str | None = None
    # Signs the local API's bearer tokens (local mode only).
    token_key: str = Field(default_factory=lambda: secrets.token_urlsafe(32))


@dataclass
class Home:
    root: Path

    @classmethod
    def locate(cls, explicit: str | None = None) -> Home:
        raw = explicit or os.environ.get("CONTACTSYNC_HOME") or str(DEFAULT_HOME)
        return cls(Path(raw).expanduser().resolve())

    @property
    def db_path(self) -> Path:
        return self.root / "contactsync.db"

    @property
    def config_path(self) -> Path:
        return self.root / "config.json"

    def ensure(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)

    def store(self) -> SQLiteStore:
        self.ensure()
        return SQLiteStore(self.db_path)

    def secrets(self) -> LocalSecretStore:
        self.ensure()
        return LocalSecretStore(self.root / "secrets.json")

    def config(self) -> LocalConfig:
        if not self.config_path.exists():
            raise FileNotFoundError(
                f"no contactsync home at {self.root}: run `contactsync init --sandbox FILE` first"
            )
        return LocalConfig.model_validate_json(self.config_path.read_text(encoding="utf-8"))

    def save_config(self, config: LocalConfig) -> None:
        self.ensure()
        self.config_path.write_text(
            json.dumps(config.model_dump(), indent=2) + "\n", encoding="utf-8"
        )
        self.config_path.chmod(0o600)
