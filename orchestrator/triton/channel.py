"""The one gRPC channel configuration for Triton (inference client and model manager).

Passing ``channel_args`` to tritonclient replaces all of its defaults, so message sizes and
keepalive are set here. ``TRITON_GRPC_URL`` may name several replicas: ``host:port,host:port``
(IP literals) or a ``dns:///name:port`` resolving to several addresses; calls are spread over
them round-robin and a replica that stops is skipped.
"""

from __future__ import annotations

import ipaddress

# Frames of 4K letterboxed to 640 and batches of 16 crops of 512² are ~20 MB per message; the
# gRPC default (4 MB) would refuse them.
MAX_MESSAGE_BYTES = 1 << 30


def channel_args(max_message_bytes: int = MAX_MESSAGE_BYTES) -> list[tuple[str, int | str]]:
    """Message sizes, keepalive, a short reconnect backoff (a restarted Triton is seen within a
    second; gRPC's default grows to 120 s) and round-robin over every resolved address."""
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.initial_reconnect_backoff_ms", 250),
        ("grpc.min_reconnect_backoff_ms", 250),
        ("grpc.max_reconnect_backoff_ms", 1000),
        ("grpc.lb_policy_name", "round_robin"),
    ]


def replicas(url: str) -> list[str]:
    """The addresses listed in ``TRITON_GRPC_URL`` (one for a plain or ``dns:///`` URL)."""
    if url.startswith(("dns:", "ipv4:", "ipv6:", "unix:")):
        scheme, _, rest = url.partition(":")
        return [url] if scheme == "dns" else [a for a in rest.split(",") if a]
    return [a.strip() for a in url.split(",") if a.strip()]


def grpc_target(url: str) -> str:
    """The channel target for ``url``: a list of IP addresses becomes ``ipv4:a,b`` (gRPC resolves
    one name per target, so several host names need one ``dns:///`` name instead)."""
    addresses = replicas(url)
    if len(addresses) <= 1 or url.startswith(("ipv4:", "ipv6:")):
        return url.strip()
    families = set()
    for address in addresses:
        host = address.rsplit(":", 1)[0].strip("[]")
        try:
            families.add(ipaddress.ip_address(host).version)
        except ValueError:
            raise ValueError(f"TRITON_GRPC_URL lists several addresses; {host!r} is not an IP address "
                             "(use one dns:///name:port that resolves to every replica)") from None
    if len(families) != 1:
        raise ValueError("TRITON_GRPC_URL mixes IPv4 and IPv6 addresses")
    return f"ipv{families.pop()}:" + ",".join(addresses)
