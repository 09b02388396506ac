"""The four provider sandboxes by name."""

from __future__ import annotations

import importlib

from contactsync_sandbox.core.app import SandboxApp
from contactsync_sandbox.core.clock import VirtualClock

PROVIDERS = ("google", "microsoft", "salesforce", "aircall")


def app_class(provider: str) -> type[SandboxApp]:
    if provider not in PROVIDERS:
        raise ValueError(f"unknown provider {provider!r}; expected one of {', '.join(PROVIDERS)}")
    module = importlib.import_module(f"contactsync_sandbox.{provider}")
    cls: type[SandboxApp] = module.App
    return cls


def create(provider: str, clock: VirtualClock | None = None, seed: int = 0) -> SandboxApp:
    return app_class(provider)(clock, seed=seed)
