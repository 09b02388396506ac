"""What every provider sandbox shares: the virtual clock, fault injection, the WSGI base with
its `/_sandbox/` admin surface, the in-process `requests` transport, the HTTPS server, outbound
webhook delivery and the realistic data generator."""

from contactsync_sandbox.core.app import ProviderError, Request, Response, SandboxApp, json_response
from contactsync_sandbox.core.clock import VirtualClock
from contactsync_sandbox.core.faults import FaultInjector, FaultRule
from contactsync_sandbox.core.transport import WSGITransport, mount_sandbox

__all__ = [
    "FaultInjector",
    "FaultRule",
    "ProviderError",
    "Request",
    "Response",
    "SandboxApp",
    "VirtualClock",
    "WSGITransport",
    "json_response",
    "mount_sandbox",
]
