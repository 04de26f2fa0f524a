"""Where a webhook may point: http(s) with a valid port, and never an internal address unless allowed.

A URL is checked when it is saved (literal addresses in any IPv4 notation, or IPv6) and
again when delivering (host names, resolved once): the connection then goes to the very
address that was checked, so a name cannot resolve to a public address for the check and
to ``127.0.0.1`` for the post. ``SPENDBOARD_WEBHOOK_ALLOW_PRIVATE=1`` lifts the address
rule, for receivers on one's own network (and the tests' local receivers).
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

ALLOW_PRIVATE_ENV = "SPENDBOARD_WEBHOOK_ALLOW_PRIVATE"
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class TargetError(ValueError):
    """A webhook URL that may not be posted to; the message names the URL and why."""


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (the checked address) and what to ask for."""

    scheme: str
    host: str  # as written, for the Host header and TLS
    address: str  # the address checked, connected to
    port: int
    path: str


def private_allowed() -> bool:
    return os.environ.get(ALLOW_PRIVATE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def literal_address(host: str) -> IPAddress | None:
    """The address a host written as an IP literal means, in any notation (``0x7f.1``, ``2130706433``)."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefxABCDEFX." for c in host):
        try:  # inet_aton reads the legacy forms a resolver would: hex, octal, fewer than four parts
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def is_internal(address: IPAddress) -> bool:
    """Loopback, link-local, private, shared, reserved, multicast or unspecified: not the public internet."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not address.is_global or address.is_multicast


def split(url: str) -> tuple[str, str, int, str]:
    """Scheme, host, port and path of an http(s) URL, or ``TargetError`` naming what is wrong."""
    if not isinstance(url, str) or any(c.isspace() or ord(c) < 32 for c in url):
        raise TargetError(f"webhook: {url!r} is not an http(s) URL")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetError(f"webhook: {url!r} is not an http(s) URL")
    try:
        port = parts.port
    except ValueError:
        raise TargetError(f"webhook: {url!r} has an invalid port") from None
    if port == 0:
        raise TargetError(f"webhook: {url!r} has an invalid port")
    if parts.username or parts.password:
        raise TargetError(f"webhook: {url!r} holds a user name or password; put credentials in the secret")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80), path


def check_saved(url: str) -> None:
    """The check when a webhook is saved: the URL's shape, and a literal address's kind."""
    _scheme, host, _port, _path = split(url)
    address = literal_address(host)
    if address is not None and is_internal(address) and not private_allowed():
        raise TargetError(
            f"webhook: {url!r} points at an internal address ({address}); "
            f"set {ALLOW_PRIVATE_ENV}=1 to allow receivers on your own network"
        )


def resolve(url: str) -> Target:
    """The check when delivering: the host resolved once, every address it gives checked."""
    scheme, host, port, path = split(url)
    address = literal_address(host)
    if address is not None:
        found = [address]
    else:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise TargetError(f"webhook: cannot resolve {host!r} ({exc})") from None
        found = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
        if not found:
            raise TargetError(f"webhook: {host!r} resolves to no address")
    if not private_allowed():
        internal = [a for a in found if is_internal(a)]
        if internal:
            raise TargetError(f"webhook: {host!r} resolves to an internal address ({internal[0]})")
    return Target(scheme, host, str(found[0]), port, path)
