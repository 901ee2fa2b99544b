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

import idna

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


# Never a webhook's destination, whatever this Python's ``is_global`` says (it has varied
# between versions): special-purpose ranges from the IANA registries.
DENIED: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
        "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
        "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
        "::/96", "::ffff:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64",
        "2001::/23", "2001:db8::/32", "2002::/16", "fc00::/7", "fe80::/10", "fec0::/10",
        "ff00::/8",
    )
)  # fmt: skip
# IPv6 forms that carry an IPv4 address a gateway will connect to: judged by that address
NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def _embedded(address: IPAddress) -> IPAddress:
    """The IPv4 address inside an IPv4-mapped, 6to4 or NAT64 IPv6 address; else itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if any(address in network for network in NAT64):
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def ascii_host(url: str) -> tuple[str, int]:
    """The URL's host as it goes on the wire (lower case, IDNA 2008 for international
    names, as httpx encodes it) and its port. ValueError for a host that is neither a name
    nor a valid IP address (``127.1``, ``0x7f.1``, ``2130706433``, ``010.1.1.1``: numeric
    forms resolvers read differently)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host:
        raise ValueError("the URL has no host")
    if not host.isascii():
        try:
            host = idna.encode(host).decode("ascii")
        except idna.IDNAError as error:
            raise ValueError(f"host {host!r} is not a valid international name: {error}") from None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        last = host.rstrip(".").rsplit(".", 1)[-1]
        if last.isdigit() or last.startswith("0x"):
            raise ValueError(
                f"host {host!r} is neither a name nor an IP address in standard form "
                "(write IPv4 addresses as four decimal numbers, e.g. 203.0.113.7)"
            ) from None
    return host, parts.port or (443 if parts.scheme == "https" else 80)


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
        if any(address in network for network in self.allowed):
            return True
        address = _embedded(address)
        if any(address in network for network in self.allowed):
            return True
        if address.is_unspecified or address.is_multicast:
            return False
        if self.allow_private:
            return True
        return address.is_global and not any(address in network for network in DENIED)

    def addresses(self, host: str, port: int) -> list[IPAddress]:
        """Every address ``host`` (an ASCII name or an IP address) resolves to, all
        permitted; else :class:`AddressRefusedError` (or :class:`UnresolvableHostError`)."""
        try:
            resolved: list[IPAddress] = [ipaddress.ip_address(host)]
        except ValueError:
            resolved = self.resolver(host, port)
        if not resolved:
            raise UnresolvableHostError(f"host {host!r} resolves to no address")
        refused = [a for a in resolved if not self.permits(a)]
        if refused:
            raise AddressRefusedError(_refusal(host, refused))
        return resolved

    def check(self, url: str) -> str | None:
        """For creation: a message saying why the URL is refused, or None. A host that does
        not resolve yet is accepted (DNS may not know it yet; every attempt checks again)."""
        try:
            self.addresses(*ascii_host(url))
        except UnresolvableHostError:
            return None
        except ValueError as error:  # refused, or a host that is neither name nor address
            return str(error)
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
