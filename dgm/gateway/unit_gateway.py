"""What a unit needs of the FM gateway on the machine it runs on: the socket its sandboxes
mount, a token per part of the unit, and a client for calls it makes itself (the diagnosis).
The run's gateway is one; on a cluster, each node's gateway is reached through a Ray actor."""

from __future__ import annotations

from typing import Any, Protocol

from dgm.gateway.ledger import Spend
from dgm.gateway.server import Lease


class UnitGateway(Protocol):
    socket_path: str

    def open_unit(self, unit_id: str, *, node_id: str | None = None) -> Lease: ...

    def close_unit(self, lease: Lease) -> Spend: ...

    def client(self, model: str, lease: Lease) -> Any: ...
