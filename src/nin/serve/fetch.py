"""``/api/predict?fileurl=URL`` done safely: http/https only, public addresses only, size and time capped.

ModelHub fetched any URL with no timeout and no size cap (a server-side request forgery hole). Here the host
name is resolved once, every address it resolves to must be public (no loopback, private, link-local,
multicast, reserved or unspecified ranges: no cloud metadata endpoint, no intranet), and the connection goes
to the address that was checked, so a second DNS answer cannot swap in a private one. Redirects are followed
(at most 3) with the same checks at each hop; the body is read in chunks against the byte cap and one
deadline for the whole fetch.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from urllib.parse import urljoin, urlsplit

from nin._version import __version__
from nin.errors import RequestError

MAX_REDIRECTS = 3
_REDIRECTS = (301, 302, 303, 307, 308)


def _check_address(ip: str, allow_private: bool) -> None:
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if allow_private:
        return
    if not addr.is_global or addr.is_multicast or addr.is_reserved or addr.is_unspecified:
        raise RequestError(
            f"refusing to fetch from {addr}: private, loopback and link-local addresses are not allowed", 403
        )


def resolve_public(host: str, port: int, allow_private: bool = False) -> str:
    """Resolve ``host`` and return one address to connect to; every address must be public."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise RequestError(f"cannot resolve host {host!r} of fileurl ({exc})", 422) from None
    addresses = [info[4][0] for info in infos]
    if not addresses:
        raise RequestError(f"host {host!r} of fileurl has no address", 422)
    for ip in addresses:  # all of them: a name with one public and one private address is refused
        _check_address(ip, allow_private)
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
    url: str, *, max_bytes: int, timeout_s: float, allow_private: bool = False
) -> tuple[bytes, str | None, str]:
    """Download ``url`` within the caps.

    Returns:
        (body, content type or None, final URL).

    Raises:
        RequestError: 422 bad URL, 403 refused address, 413 over ``max_bytes``, 504 over ``timeout_s``,
            502 the remote server failed or answered an error.
    """
    deadline = time.monotonic() + timeout_s
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
        ip = resolve_public(parts.hostname, port, allow_private)
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
