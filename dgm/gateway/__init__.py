"""The FM gateway: sandboxes reach foundation models only through it, with metered tokens."""

from dgm.gateway.ledger import Budget, Spend, UsageSink
from dgm.gateway.server import Gateway, GatewaySettings, Lease, Upstream

__all__ = ["Budget", "Gateway", "GatewaySettings", "Lease", "Spend", "Upstream", "UsageSink"]
