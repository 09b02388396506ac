"""Salesforce sandbox: REST API, Bulk API 2.0 and OAuth (refresh token and JWT bearer), behaving
as the real service does for the unpatched simple-salesforce client."""

from contactsync_sandbox.salesforce.responses import SalesforceSandbox

App = SalesforceSandbox

__all__ = ["App", "SalesforceSandbox"]
