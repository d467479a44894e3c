"""``/api/predict?fileurl=URL`` done safely: http/https only, public addresses only, size and time capped.

ModelHub fetched any URL with no timeout and no size cap (a server-side request forgery hole). Here the host
name is resolved once, every address it resolves to must be public (no loopback, private, link-local,
multicast, reserved or unspecified ranges: no cloud metadata endpoint, no intranet), and the connection goes
to the address that was checked, so a second DNS answer cannot swap in a private one. Redirects are followed
(at most 3) with the same checks at each hop; the body is read in chunks against the byte cap and one
deadline for the whole fetch.

An allowlist (``nin serve --fileurl-allow-hosts``) names host names, addresses or networks that may be fetched
although they are private or loopback: an intranet image store, or a test's own file server. Each hop of a
redirect is checked again, so a listed host cannot redirect to an unlisted private one.
"""

from __future__ import annotations

import http.client
import ipaddress
import re
import socket
import ssl
import time
from collections.abc import Iterable
from urllib.parse import urljoin, urlsplit

from nin._version import __version__
from nin.errors import ConfigError, RequestError

MAX_REDIRECTS = 3
_REDIRECTS = (301, 302, 303, 307, 308)
_HOST_NAME = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*")


class HostAllowlist:
    """Host names, addresses and networks that may be fetched although private or loopback."""

    def __init__(self, entries: Iterable[str] = ()) -> None:
        self.names: set[str] = set()
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for raw in entries:
            entry = raw.strip().lower().rstrip(".")
            if entry.startswith("[") and entry.endswith("]"):
                entry = entry[1:-1]
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
            if not _HOST_NAME.fullmatch(entry):
                raise ConfigError(
                    f"--fileurl-allow-hosts: {raw!r} is not a host name, an address or a network "
                    "(examples: images.intranet, 127.0.0.1, 10.0.0.0/8)"
                )
            self.names.add(entry)

    def allows(self, host: str, addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return host.lower().rstrip(".") in self.names or any(addr in net for net in self.networks)


def _check_address(ip: str, allow_private: bool, allowlist: HostAllowlist | None = None, host: str = "") -> None:
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if allow_private or (allowlist is not None and allowlist.allows(host, addr)):
        return
    if not addr.is_global or addr.is_multicast or addr.is_reserved or addr.is_unspecified:
        raise RequestError(
            f"refusing to fetch from {addr}: private, loopback and link-local addresses are not allowed "
            "unless the server lists them in --fileurl-allow-hosts",
            403,
        )


def resolve_public(host: str, port: int, allow_private: bool = False, allowlist: HostAllowlist | None = None) -> str:
    """Resolve ``host`` and return one address to connect to; every address must be public or allowlisted."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise RequestError(f"cannot resolve host {host!r} of fileurl ({exc})", 422) from None
    addresses = [info[4][0] for info in infos]
    if not addresses:
        raise RequestError(f"host {host!r} of fileurl has no address", 422)
    for ip in addresses:  # all of them: a name with one public and one private address is refused
        _check_address(ip, allow_private, allowlist, host)
    return addresses[0]


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host: str, ip: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._ip = ip

    def connect(self) -> None:
        self.sock = socket.create_connection((self._ip, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host: str, ip: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._ip = ip

    def connect(self) -> None:
        sock = socket.create_connection((self._ip, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def fetch_url(
    url: str,
    *,
    max_bytes: int,
    timeout_s: float,
    allow_private: bool = False,
    allow_hosts: HostAllowlist | Iterable[str] = (),
) -> tuple[bytes, str | None, str]:
    """Download ``url`` within the caps.

    Args:
        url: an http or https URL.
        max_bytes: the body cap.
        timeout_s: one deadline for the whole fetch, redirects included.
        allow_private: allow every private and loopback address (trusted networks only).
        allow_hosts: host names, addresses or networks allowed although private (see :class:`HostAllowlist`).

    Returns:
        (body, content type or None, final URL).

    Raises:
        RequestError: 422 bad URL, 403 refused address, 413 over ``max_bytes``, 504 over ``timeout_s``,
            502 the remote server failed or answered an error.
    """
    deadline = time.monotonic() + timeout_s
    allowlist = allow_hosts if isinstance(allow_hosts, HostAllowlist) else HostAllowlist(allow_hosts)
    for _ in range(MAX_REDIRECTS + 1):
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise RequestError(f"fileurl must be an http or https URL, got scheme {scheme or '(none)'!r}", 422)
        if not parts.hostname:
            raise RequestError("fileurl has no host name", 422)
        if parts.username or parts.password:
            raise RequestError("fileurl must not carry a user name or password", 422)
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError:
            raise RequestError("fileurl has an invalid port", 422) from None
        ip = resolve_public(parts.hostname, port, allow_private, allowlist)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RequestError(f"fetching fileurl took longer than {timeout_s:g} s", 504)
        conn_cls = _PinnedHTTPS if scheme == "https" else _PinnedHTTP
        conn = conn_cls(parts.hostname, ip, port, timeout=remaining)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            conn.request("GET", path, headers={"User-Agent": f"nin/{__version__}", "Accept": "image/*"})
            resp = conn.getresponse()
            if resp.status in _REDIRECTS and resp.getheader("Location"):
                url = urljoin(url, resp.getheader("Location"))
                continue
            if resp.status != 200:
                raise RequestError(f"fileurl answered HTTP {resp.status} {resp.reason}", 502)
            length = resp.getheader("Content-Length")
            if length is not None and length.isdigit() and int(length) > max_bytes:
                raise RequestError(f"fileurl is {int(length):,} bytes; the limit is {max_bytes:,}", 413)
            chunks, total = [], 0
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RequestError(f"fetching fileurl took longer than {timeout_s:g} s", 504)
                if conn.sock is not None:
                    conn.sock.settimeout(remaining)
                chunk = resp.read1(64 * 1024) if hasattr(resp, "read1") else resp.read(64 * 1024)
                if not chunk:
                    break
                total += len(chunk)
                if total > max_bytes:
                    raise RequestError(f"fileurl is larger than the limit of {max_bytes:,} bytes", 413)
                chunks.append(chunk)
            return b"".join(chunks), resp.getheader("Content-Type"), url
        except TimeoutError:
            raise RequestError(f"fetching fileurl took longer than {timeout_s:g} s", 504) from None
        except (OSError, http.client.HTTPException) as exc:
            raise RequestError(f"fetching fileurl failed: {type(exc).__name__}: {exc}", 502) from None
        finally:
            conn.close()
    raise RequestError(f"fileurl redirected more than {MAX_REDIRECTS} times", 502)
