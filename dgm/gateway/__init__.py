"""The FM gateway: sandboxes reach foundation models only through it, with metered tokens."""

from dgm.gateway.ledger import Budget, RunAccount, RunLedger, Spend, UsageSink
from dgm.gateway.server import Gateway, GatewaySettings, Lease, Upstream, gateway_client

__all__ = [
    "Budget",
    "Gateway",
    "GatewaySettings",
    "Lease",
    "RunAccount",
    "RunLedger",
    "Spend",
    "Upstream",
    "UsageSink",
    "gateway_client",
]
