"""Connectors: one package per provider, I/O only. Each translates its provider's raw records to
and from the provider-neutral ``RemoteRecord`` / ``ContactFields`` and nothing outside its
package knows the provider's shapes."""
