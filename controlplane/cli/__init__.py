"""The ``controlplane`` command: a client of the REST API (like kubectl for the API
server), plus ``serve`` and ``db`` for running the server itself.

Client commands read the server URL and token from flags or ``CONTROLPLANE_URL`` /
``CONTROLPLANE_TOKEN``, print tables for people and ``-o json`` for scripts, and exit
non-zero with the API's own message when a call is refused. They never print the token.
"""

from controlplane.cli.app import app, main

__all__ = ["app", "main"]
