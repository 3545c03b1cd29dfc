"""video_url checks that need no network: schemes, credentials, and which addresses are refused."""

from __future__ import annotations

import pytest

from orchestrator.download import _is_public, check_host, check_url_syntax
from orchestrator.errors import InputError
from orchestrator.settings import Settings


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://h/x", "gopher://h", "javascript:alert(1)",
                                 "http://", "https://user:pw@example.com/v.mp4", "h" * 5000])
def test_bad_urls_are_refused_with_a_message(url):
    with pytest.raises(InputError, match="video_url"):
        check_url_syntax(url)


def test_good_url_passes():
    assert check_url_syntax("  https://example.com/v.mp4?x=1 ") == "https://example.com/v.mp4?x=1"


@pytest.mark.parametrize("address,public", [
    ("8.8.8.8", True), ("2606:4700:4700::1111", True),
    ("127.0.0.1", False), ("10.1.2.3", False), ("172.16.0.1", False), ("192.168.1.1", False),
    ("169.254.169.254", False), ("100.64.0.1", False), ("0.0.0.0", False), ("::1", False),
    ("::ffff:127.0.0.1", False), ("fe80::1%eth0", False), ("224.0.0.1", False),
])
def test_private_and_local_addresses(address, public):
    assert _is_public(address) is public


@pytest.mark.parametrize("address", [
    "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "64:ff9b::10.0.0.1", "64:ff9b:1::c0a8:101",  # NAT64
    "2002:7f00:1::", "2002:a9fe:a9fe::1", "2002:c0a8:0101::",  # 6to4 wrapping loopback/metadata/private
    "::127.0.0.1", "::10.0.0.1", "::169.254.169.254", "::192.168.1.1",  # IPv4-compatible
    "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::ffff:7f00:1",  # IPv4-mapped
])
def test_ipv6_forms_embedding_a_private_ipv4_are_refused(address):
    assert _is_public(address) is False


@pytest.mark.parametrize("address", ["64:ff9b::808:808", "2002:808:808::1", "::ffff:8.8.8.8"])
def test_ipv6_forms_embedding_a_public_ipv4_follow_it(address):
    assert _is_public(address) is True


async def test_localhost_is_refused_unless_allowed():
    with pytest.raises(InputError, match="private or local"):
        await check_host("http://localhost:9/x.mp4", Settings())
    await check_host("http://localhost:9/x.mp4", Settings(allow_private_urls=True))


def test_requests_are_pinned_to_the_checked_address():
    from orchestrator.download import pinned_request

    url, headers, ext = pinned_request("https://videos.example.com:8443/a/b.mp4?t=1", "93.184.216.34")
    assert url == "https://93.184.216.34:8443/a/b.mp4?t=1"
    assert headers == {"Host": "videos.example.com:8443"} and ext == {"sni_hostname": "videos.example.com"}
    url, headers, _ = pinned_request("http://v6.example/x", "2001:db8::1")
    assert url == "http://[2001:db8::1]/x" and headers["Host"] == "v6.example"
