"""The REST API: FastAPI app factory and thin routers over the services."""

from controlplane.api.app import create_app

__all__ = ["create_app"]
