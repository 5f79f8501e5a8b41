import ipaddress
import socket

import pytest

from service import ssrf
from service.ssrf import SsrfPolicy, UnsafeURLError, check_url


@pytest.fixture
def dns(monkeypatch):
    table = {}

    def fake(host, port, type=0):
        if host not in table:
            raise socket.gaierror(-2, "Name or service not known")
        fam = socket.AF_INET6 if ":" in table[host] else socket.AF_INET
        return [(fam, socket.SOCK_STREAM, 6, "", (table[host], port))]
    monkeypatch.setattr(ssrf.socket, "getaddrinfo", fake)
    return table


@pytest.mark.parametrize("addr", ["127.0.0.1", "10.1.2.3", "172.16.0.5", "192.168.1.1", "169.254.169.254",
                                  "100.64.0.1", "0.0.0.0", "224.0.0.1", "240.0.0.1", "::1", "fe80::1", "fc00::1",
                                  "::ffff:10.0.0.1", "ff02::1"])
def test_non_public_addresses_rejected(dns, addr):
    dns["evil.example"] = addr
    with pytest.raises(UnsafeURLError, match="non-public"):
        check_url("http://evil.example/a.wav", SsrfPolicy())


def test_public_ok_and_connects_to_checked_address(dns):
    dns["good.example"] = "93.184.216.34"
    c = check_url("https://good.example:8443/x.wav?sig=1", SsrfPolicy())
    assert (c.address, c.port, c.path, c.host) == ("93.184.216.34", 8443, "/x.wav?sig=1", "good.example")


@pytest.mark.parametrize("url", ["ftp://a.example/x", "file:///etc/passwd", "gopher://x", "http://", "notaurl",
                                 "http://user:pw@good.example/", "http://metadata.google.internal/"])
def test_bad_urls(dns, url):
    dns["good.example"] = "93.184.216.34"
    with pytest.raises(UnsafeURLError):
        check_url(url, SsrfPolicy())


def test_unresolvable(dns):
    with pytest.raises(UnsafeURLError, match="resolve"):
        check_url("http://nope.example/", SsrfPolicy())


def test_dev_escape_hatches(dns):
    dns["local.example"] = "127.0.0.1"
    dns["meta.example"] = "169.254.169.254"
    allow_lo = SsrfPolicy(allow_cidrs=("127.0.0.0/8",))
    check_url("http://local.example/", allow_lo)
    with pytest.raises(UnsafeURLError):
        check_url("http://meta.example/", allow_lo)
    check_url("http://local.example/", SsrfPolicy(allow_private=True))


def test_policy_addresses():
    p = SsrfPolicy()
    assert p.address_ok(ipaddress.ip_address("8.8.8.8"))
    assert not p.address_ok(ipaddress.ip_address("192.168.0.1"))
