"""The web UI (`dgm ui`): runs, a live dashboard, the lineage tree, nodes, the review queue."""

from dgm.ui.app import create_app

__all__ = ["create_app"]
