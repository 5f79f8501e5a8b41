"""SSRF guard for user-supplied URLs (audio_url, webhook_url) and a safe fetcher.

A URL is checked *after* DNS resolution: every address the host resolves to must be
public. Rejected: loopback, private (RFC 1918, ULA), link-local (169.254/16 incl. the
cloud metadata address, fe80::/10), multicast, reserved, unspecified, shared (CGNAT),
IPv4-mapped forms of those. The fetcher then connects to the *checked* address (no
second lookup, so DNS rebinding cannot swap it), sends the original Host header / SNI,
and follows at most ``max_redirects`` redirects, re-checking each hop.

``Settings.allow_private_urls`` disables the address check (dev only);
``Settings.ssrf_allow_cidrs`` allows listed networks only (tests: ``127.0.0.0/8``).
"""
from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import urllib3

from kimi_model.errors import KimiError

METADATA_HOSTS = {"metadata.google.internal", "metadata", "instance-data"}


class UnsafeURLError(KimiError):
    code = "url_not_allowed"
    permanent = True


class FetchError(KimiError):
    """Network trouble fetching a URL: worth a retry."""
    code = "fetch_failed"
    permanent = False


class FetchTooLargeError(KimiError):
    code = "payload_too_large"
    permanent = True


class FetchHTTPError(KimiError):
    code = "fetch_failed"

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status
        # 4xx (except 408/429) will not heal by retrying
        self.permanent = 400 <= status < 500 and status not in (408, 429)


@dataclass(frozen=True)
class SsrfPolicy:
    allow_private: bool = False
    allow_cidrs: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, s) -> "SsrfPolicy":
        return cls(allow_private=s.allow_private_urls, allow_cidrs=tuple(s.ssrf_allow_cidrs))

    def _allowed_nets(self):
        return [ipaddress.ip_network(c, strict=False) for c in self.allow_cidrs]

    def address_ok(self, ip: ipaddress._BaseAddress) -> bool:
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in n for n in self._allowed_nets()):
            return True
        if self.allow_private:
            return not (ip.is_multicast or ip.is_unspecified)
        return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_link_local
                                     or ip.is_loopback or ip.is_private or ip.is_unspecified)


def resolve(host: str, port: int) -> list[ipaddress._BaseAddress]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise UnsafeURLError(f"cannot resolve host {host!r}: {e.strerror or e}") from e
    out = []
    for info in infos:
        addr = info[4][0].split("%", 1)[0]
        ip = ipaddress.ip_address(addr)
        if ip not in out:
            out.append(ip)
    return out


@dataclass(frozen=True)
class CheckedURL:
    url: str
    scheme: str
    host: str
    port: int
    path: str           # path + query
    address: str        # the checked IP to connect to


def check_url(url: str, policy: SsrfPolicy, what: str = "url") -> CheckedURL:
    """Validate scheme and host of ``url`` and return where to connect. Raises UnsafeURLError."""
    if not isinstance(url, str) or not url:
        raise UnsafeURLError(f"{what} must be a non-empty string")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise UnsafeURLError(f"{what} is not a valid URL: {e}") from e
    if parts.scheme not in ("http", "https"):
        raise UnsafeURLError(f"{what} must use http or https, not {parts.scheme or 'no scheme'!r}")
    host = parts.hostname
    if not host:
        raise UnsafeURLError(f"{what} has no host")
    if parts.username or parts.password:
        raise UnsafeURLError(f"{what} must not contain credentials")
    if host.lower().rstrip(".") in METADATA_HOSTS and not policy.allow_private:
        raise UnsafeURLError(f"{what} points at a cloud metadata service")
    port = port or (443 if parts.scheme == "https" else 80)
    addrs = resolve(host, port)
    if not addrs:
        raise UnsafeURLError(f"{what}: host {host!r} has no address")
    bad = [str(a) for a in addrs if not policy.address_ok(a)]
    if bad:
        raise UnsafeURLError(
            f"{what} resolves to a non-public address ({', '.join(bad)}): private, loopback, link-local, "
            f"metadata, multicast and reserved addresses are not allowed")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return CheckedURL(url, parts.scheme, host, port, path, str(addrs[0]))


def _pool(c: CheckedURL, timeout: float) -> urllib3.HTTPConnectionPool:
    t = urllib3.Timeout(connect=timeout, read=timeout)
    if c.scheme == "https":
        import certifi  # shipped with requests
        return urllib3.HTTPSConnectionPool(c.address, c.port, timeout=t, retries=False,
                                           server_hostname=c.host, assert_hostname=c.host,
                                           cert_reqs="CERT_REQUIRED", ca_certs=certifi.where())
    return urllib3.HTTPConnectionPool(c.address, c.port, timeout=t, retries=False)


def _host_header(c: CheckedURL) -> str:
    default = 443 if c.scheme == "https" else 80
    h = f"[{c.host}]" if ":" in c.host else c.host
    return h if c.port == default else f"{h}:{c.port}"


def safe_request(method: str, url: str, policy: SsrfPolicy, *, body: bytes | None = None,
                 headers: dict | None = None, timeout: float = 10.0, max_redirects: int = 0,
                 preload: bool = True) -> urllib3.BaseHTTPResponse:
    """One request to a checked address. Redirects are followed (re-checked) up to max_redirects."""
    for _hop in range(max_redirects + 1):
        c = check_url(url, policy)
        h = {"Host": _host_header(c), "User-Agent": "kimi-asr/0.1"}
        h.update(headers or {})
        try:
            resp = _pool(c, timeout).urlopen(method, c.path, body=body, headers=h, redirect=False,
                                             preload_content=preload, assert_same_host=False)
        except urllib3.exceptions.HTTPError as e:
            raise FetchError(f"{method} {url} failed: {e}") from e
        if resp.status in (301, 302, 303, 307, 308) and max_redirects and resp.headers.get("Location"):
            url = urljoin(url, resp.headers["Location"])
            resp.release_conn()
            continue
        return resp
    raise FetchError(f"too many redirects fetching {url}")


def fetch_to_file(url: str, policy: SsrfPolicy, fileobj, max_bytes: int, timeout: float = 30.0) -> int:
    """Stream ``url`` into ``fileobj``; returns bytes written. Raises FetchTooLargeError past max_bytes."""
    resp = safe_request("GET", url, policy, timeout=timeout, max_redirects=3, preload=False)
    try:
        if resp.status >= 400:
            raise FetchHTTPError(f"GET {url} returned HTTP {resp.status}", resp.status)
        declared = resp.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > max_bytes:
            raise FetchTooLargeError(f"audio_url body is {declared} bytes; the limit is {max_bytes}")
        n = 0
        try:
            for chunk in resp.stream(1 << 16):
                n += len(chunk)
                if n > max_bytes:
                    raise FetchTooLargeError(f"audio_url body exceeds the limit of {max_bytes} bytes")
                fileobj.write(chunk)
        except urllib3.exceptions.HTTPError as e:
            raise FetchError(f"GET {url} failed mid-body: {e}") from e
        return n
    finally:
        resp.release_conn()


def is_public_host(url: str, policy: SsrfPolicy) -> bool:
    try:
        check_url(url, policy)
        return True
    except UnsafeURLError:
        return False


__all__: Iterable[str] = ["SsrfPolicy", "check_url", "safe_request", "fetch_to_file", "UnsafeURLError",
                          "FetchError", "FetchTooLargeError", "FetchHTTPError"]
