"""Where a webhook may go: URL checks against server-side request forgery, and HTTP
connections pinned to the address that was checked.

An endpoint's host is resolved and every address it resolves to must be global (not
loopback, private, link-local, shared, reserved, multicast...), when the endpoint is saved and
again at every delivery, since DNS can change. The connection then goes to the address that
passed, so a second lookup cannot swap in another one (DNS rebinding). Self-hosters whose
receivers live on their own network set ALLOW_PRIVATE_WEBHOOK_TARGETS.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from plutomi.services.errors import Invalid


class Refused(Exception):
    """The URL may not be called; str() says why in words for a person."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str  # with the query string

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def parse(url: str) -> Target:
    """The parts of an endpoint URL, or Refused with the reason."""
    url = (url or "").strip()
    if not url:
        raise Refused("Enter the URL to send events to.")
    if len(url) > 2000:
        raise Refused("Use a URL of at most 2000 characters.")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise Refused("A URL cannot contain spaces or control characters.")
    try:
        parts = urlsplit(url)
    except ValueError:  # an unbalanced or invalid [host]
        raise Refused("This URL is not valid: check the host's brackets.") from None
    if parts.scheme not in ("http", "https"):
        raise Refused("Use an http:// or https:// URL.")
    if parts.username or parts.password:
        raise Refused("Leave credentials out of the URL; verify the signature instead.")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    elif not 1 <= port <= 65535:  # ":0" parses, and would have meant the default port
        raise Refused("The port in this URL is not a number from 1 to 65535.")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise Refused("This URL has no host name.")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(parts.scheme, host, port, path)


# IPv6 prefixes that carry an IPv4 address the traffic reaches: NAT64's well-known prefix
# (RFC 6052; an IPv6-only network's gateway forwards to that IPv4 address) and 6to4 (RFC 3056).
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        elif address in _NAT64:
            address = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        elif address.sixtofour is not None:
            address = address.sixtofour
    return address.is_global and not address.is_multicast


def resolve(target: Target, allow_private: bool) -> str:
    """The address to connect to: every address of the host must be public (unless
    allow_private), and the first is used."""
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Refused(f"The host {target.host} could not be found ({exc}).") from None
    addresses = []
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if not allow_private and not _is_public(address):
            raise Refused(
                f"{target.host} resolves to {address}, a private or reserved address. "
                "Webhooks go only to public addresses."
            )
        addresses.append(str(address))
    if not addresses:
        raise Refused(f"The host {target.host} has no address.")
    return addresses[0]


def check(url: str, allow_private: bool) -> str:
    """The URL, cleaned, if it may be saved as an endpoint; Invalid(field="url") otherwise."""
    try:
        resolve(parse(url), allow_private)
    except Refused as exc:
        raise Invalid(str(exc), "url") from None
    return url.strip()


@lru_cache(maxsize=1)
def _tls() -> ssl.SSLContext:
    return ssl.create_default_context()


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, target: Target, address: str, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, target: Target, address: str, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout, context=_tls())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # The certificate is checked against the host name, while the bytes go to the address.
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def connect(target: Target, address: str, timeout: float) -> http.client.HTTPConnection:
    kind = _PinnedHTTPS if target.scheme == "https" else _PinnedHTTP
    return kind(target, address, timeout)
