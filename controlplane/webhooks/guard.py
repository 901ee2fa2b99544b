"""Where webhooks may point: not at the control plane's own network, unless allowed.

A webhook URL is chosen by an admin, but the control plane POSTs to it from inside the
cluster, with the cluster's network reach: without a guard, a webhook is a way to make the
control plane send requests to the Kubernetes API, a cloud metadata endpoint
(169.254.169.254) or any internal service (server-side request forgery). So by default a
webhook's host must resolve to public (globally routable) addresses only.

Internal receivers (an alert router in the cluster) are allowed by network:
``CONTROLPLANE_WEBHOOK_ALLOWED_CIDRS=10.96.0.0/12,fd00::/8``, or, for a trusted network
where any internal address is fine, ``CONTROLPLANE_WEBHOOK_ALLOW_PRIVATE_NETWORKS=true``.

The check runs when a webhook is created (a clear 422) and again before every attempt,
on the addresses the request then connects to (the dispatcher pins the connection to a
checked address), so a name that later resolves elsewhere (DNS rebinding) gains nothing.
Redirects are never followed.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from controlplane.config import IPNetwork, Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[IPAddress]]


class AddressRefusedError(ValueError):
    """The URL's host is, or resolves to, an address webhooks may not reach."""


class UnresolvableHostError(ValueError):
    """The URL's host name does not resolve (now)."""


def system_resolver(host: str, port: int) -> list[IPAddress]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise UnresolvableHostError(f"host {host!r} does not resolve: {error}") from error
    found: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found


def _unmapped(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
    return address


@dataclass(frozen=True)
class AddressPolicy:
    allow_private: bool = False
    allowed: tuple[IPNetwork, ...] = ()
    resolver: Resolver = system_resolver

    @classmethod
    def from_settings(cls, settings: Settings) -> AddressPolicy:
        return cls(
            allow_private=settings.webhook_allow_private_networks,
            allowed=settings.webhook_allowed_networks,
        )

    def permits(self, address: IPAddress) -> bool:
        address = _unmapped(address)
        if any(address in network for network in self.allowed):
            return True
        if address.is_unspecified or address.is_multicast:
            return False
        return self.allow_private or address.is_global

    def addresses(self, url: str) -> tuple[str, list[IPAddress]]:
        """The URL's host and every address it resolves to, all permitted; else
        :class:`AddressRefusedError` (or :class:`UnresolvableHostError`)."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            resolved: list[IPAddress] = [ipaddress.ip_address(host)]
        except ValueError:
            resolved = self.resolver(host, port)
        if not resolved:
            raise UnresolvableHostError(f"host {host!r} resolves to no address")
        refused = [a for a in resolved if not self.permits(a)]
        if refused:
            raise AddressRefusedError(_refusal(host, refused))
        return host, resolved

    def check(self, url: str) -> str | None:
        """For creation: a message saying why the URL is refused, or None. A host that does
        not resolve yet is accepted (DNS may not know it yet; every attempt checks again)."""
        try:
            self.addresses(url)
        except AddressRefusedError as error:
            return str(error)
        except UnresolvableHostError:
            return None
        return None


def _refusal(host: str, refused: Sequence[IPAddress]) -> str:
    shown = ", ".join(str(a) for a in refused[:3])
    where = f"{host} is" if host == str(refused[0]) else f"{host!r} resolves to {shown},"
    return (
        f"webhook host {where} an internal address (loopback, private, link-local or "
        "reserved), which webhooks may not reach by default; allow its network with "
        "CONTROLPLANE_WEBHOOK_ALLOWED_CIDRS (e.g. 10.96.0.0/12), or set "
        "CONTROLPLANE_WEBHOOK_ALLOW_PRIVATE_NETWORKS=true on a trusted network"
    )
