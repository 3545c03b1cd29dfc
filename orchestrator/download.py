"""``video_url`` fetching with the limits of a public service.

Only http(s); the host's addresses must all be public unless ``settings.allow_private_urls``
(no SSRF into the machine or its network), and the connection goes to the address that was checked
(no DNS rebinding in between; TLS still verifies the real host name); redirects are followed by
hand so every hop is checked;
size (``url_max_mb``) and total time (``url_timeout_s``) are bounded; the body streams to disk.
Errors are ``InputError``s whose message tells the user what was wrong with the URL.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import shutil
import socket
from pathlib import Path
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from orchestrator import metrics
from orchestrator.errors import InputError, PayloadTooLargeError
from orchestrator.settings import Settings

LOGGER = logging.getLogger(__name__)

MAX_REDIRECTS = 5
CHUNK = 256 * 1024
WRITE_BATCH = 1024 * 1024  # bytes written per worker-thread call
DISK_CHECK_BYTES = 64 * 1024 * 1024  # free space re-checked after every this many bytes


def check_url_syntax(url: str) -> str:
    """Cheap checks done at submission (400 at once): scheme and host present, sane length."""
    url = (url or "").strip()
    if len(url) > 4096:
        raise InputError("video_url: longer than 4096 characters")
    parts = urlsplit(url)
    if parts.scheme.lower() not in {"http", "https"}:
        raise InputError(f"video_url: only http and https URLs are accepted, not {parts.scheme or 'no scheme'!r}")
    if not parts.hostname:
        raise InputError("video_url: the URL has no host")
    if parts.username or parts.password:
        raise InputError("video_url: URLs with credentials are not accepted")
    return url


_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address carries to the network: IPv4-mapped ``::ffff:a.b.c.d``,
    IPv4-compatible ``::a.b.c.d``, NAT64 ``64:ff9b::/96`` (and the local-use /48), 6to4
    ``2002::/16`` and Teredo. Python calls several of these forms global whatever they wrap."""
    low32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    if ip.sixtofour is not None:
        return [ip.sixtofour]
    if ip.teredo is not None:
        return list(ip.teredo)
    if any(ip in net for net in _NAT64) or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return [low32]
    return []


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        inner = embedded_ipv4(ip)
        if inner:  # judged by what it reaches, not by its IPv6 wrapping
            return all(v4.is_global and not v4.is_multicast for v4 in inner)
    return ip.is_global and not ip.is_multicast


async def check_host(url: str, settings: Settings) -> str:
    """Resolve the host; refuse loopback/private/link-local/reserved addresses unless allowed.

    Returns the address to connect to.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.wait_for(
            asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout=10
        )
    except (socket.gaierror, asyncio.TimeoutError, UnicodeError) as exc:
        raise InputError(f"video_url: cannot resolve host {host!r}") from exc
    addresses = [info[4][0] for info in infos]
    if not addresses:
        raise InputError(f"video_url: cannot resolve host {host!r}")
    if not settings.allow_private_urls:
        for address in addresses:
            if not _is_public(address):
                raise InputError(
                    f"video_url: host {host!r} resolves to a private or local address ({address}); "
                    "such URLs are refused (set ALLOW_PRIVATE_URLS=true to allow them)"
                )
    return addresses[0]


def pinned_request(url: str, address: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """(URL with the checked address as host, headers, httpx extensions) for one request."""
    parts = urlsplit(url)
    host = address.split("%", 1)[0]
    host = f"[{host}]" if ":" in host else host
    netloc = f"{host}:{parts.port}" if parts.port else host
    pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    return pinned, {"Host": parts.netloc}, {"sni_hostname": parts.hostname or ""}


async def download(url: str, dest: Path, settings: Settings) -> int:
    """Fetch ``url`` into ``dest`` (atomically: ``.part`` then rename). Returns the byte count."""
    url = check_url_syntax(url)
    limit = settings.url_max_mb * 1024 * 1024
    part = dest.with_name(dest.name + ".part")
    try:
        async with asyncio.timeout(settings.url_timeout_s):
            size = await _fetch(url, part, limit, settings)
    except TimeoutError as exc:
        part.unlink(missing_ok=True)
        raise InputError(f"video_url: the download did not finish within {settings.url_timeout_s:.0f} s") from exc
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, dest)
    return size


async def _save(response: httpx.Response, part: Path, limit: int, settings: Settings) -> int:
    """Write the body to ``part`` in a worker thread (~1 MB at a time, never on the event loop),
    within ``limit`` bytes and above the ``MIN_FREE_DISK_MB`` floor; returns the size."""
    size, batch, next_check = 0, bytearray(), DISK_CHECK_BYTES
    with open(part, "wb") as out:
        async for chunk in response.aiter_bytes(CHUNK):
            size += len(chunk)
            if size > limit:
                raise PayloadTooLargeError(f"video_url: the file is over the {settings.url_max_mb} MB limit")
            batch += chunk
            metrics.UPLOAD_BYTES.inc(len(chunk))
            if len(batch) >= WRITE_BATCH:
                data, batch = bytes(batch), bytearray()
                await asyncio.to_thread(out.write, data)
            if settings.min_free_disk_mb and size >= next_check:
                next_check += DISK_CHECK_BYTES
                free_mb = (await asyncio.to_thread(shutil.disk_usage, part.parent)).free / 2**20
                if free_mb < settings.min_free_disk_mb:
                    raise InputError(f"video_url: the server ran short of disk space ({free_mb:.0f} MB free, "
                                     f"{settings.min_free_disk_mb} MB must stay free: MIN_FREE_DISK_MB)")
        if batch:
            await asyncio.to_thread(out.write, bytes(batch))
    return size


async def _fetch(url: str, part: Path, limit: int, settings: Settings) -> int:
    timeout = httpx.Timeout(connect=10.0, read=30.0, write=30.0, pool=10.0)
    # trust_env=False: no proxy from the environment, so the checked host is the one connected to.
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            address = await check_host(url, settings)
            pinned, headers, extensions = pinned_request(url, address)
            try:
                async with client.stream("GET", pinned, headers={**headers, "Accept": "video/*,*/*"},
                                         extensions=extensions) as response:
                    if response.is_redirect:
                        location = response.headers.get("location")
                        if not location:
                            raise InputError("video_url: redirect without a Location header")
                        url = check_url_syntax(urljoin(url, location))
                        continue
                    if response.status_code != 200:
                        raise InputError(f"video_url: the server answered HTTP {response.status_code}")
                    declared = response.headers.get("content-length")
                    if declared and declared.isdigit() and int(declared) > limit:
                        raise PayloadTooLargeError(
                            f"video_url: the file is {int(declared) / 2**20:.0f} MB, over the "
                            f"{settings.url_max_mb} MB limit"
                        )
                    size = await _save(response, part, limit, settings)
                    if size == 0:
                        raise InputError("video_url: the server sent an empty file")
                    return size
            except httpx.TimeoutException as exc:
                raise InputError(f"video_url: the server was too slow ({type(exc).__name__})") from exc
            except httpx.HTTPError as exc:
                raise InputError(f"video_url: could not fetch the URL ({type(exc).__name__}: {exc})") from exc
        raise InputError(f"video_url: more than {MAX_REDIRECTS} redirects")
