"""One gRPC channel configuration for Triton, and TRITON_GRPC_URL naming several replicas."""

from __future__ import annotations

import pytest

from orchestrator.triton.channel import MAX_MESSAGE_BYTES, channel_args, grpc_target, replicas


def test_channel_args_set_sizes_and_round_robin():
    args = dict(channel_args())
    assert args["grpc.max_send_message_length"] == args["grpc.max_receive_message_length"] == MAX_MESSAGE_BYTES
    assert args["grpc.lb_policy_name"] == "round_robin" and args["grpc.max_reconnect_backoff_ms"] <= 1000


@pytest.mark.parametrize("url, target, listed", [
    ("127.0.0.1:8001", "127.0.0.1:8001", ["127.0.0.1:8001"]),
    ("triton:8001", "triton:8001", ["triton:8001"]),
    ("127.0.0.1:8001, 127.0.0.1:9001", "ipv4:127.0.0.1:8001,127.0.0.1:9001", ["127.0.0.1:8001", "127.0.0.1:9001"]),
    ("[::1]:8001,[::1]:9001", "ipv6:[::1]:8001,[::1]:9001", ["[::1]:8001", "[::1]:9001"]),
    ("dns:///triton-headless:8001", "dns:///triton-headless:8001", ["dns:///triton-headless:8001"]),
    ("ipv4:10.0.0.1:8001,10.0.0.2:8001", "ipv4:10.0.0.1:8001,10.0.0.2:8001", ["10.0.0.1:8001", "10.0.0.2:8001"]),
])
def test_targets(url, target, listed):
    assert grpc_target(url) == target and replicas(url) == listed


def test_several_host_names_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="dns:///"):
        grpc_target("triton-a:8001,triton-b:8001")
