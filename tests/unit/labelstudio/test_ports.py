"""Ports for local servers: free when chosen, and out of the kernel's way until bound."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from prelabel.labelstudio import server
from prelabel.labelstudio.server import free_port, port_is_free


def _ephemeral_low() -> int:
    return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])


def test_a_free_port_is_below_the_ephemeral_range_and_bindable() -> None:
    """The kernel gives ephemeral ports to ``bind(0)`` and outgoing connections: a port chosen
    there could be taken by another process before the server binds it."""
    low = _ephemeral_low()
    ports = {free_port() for _ in range(20)}
    assert len(ports) > 1  # chosen at random, not one port for everyone
    assert all(20000 <= port < low for port in ports), sorted(ports)
    port = ports.pop()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))
        assert not port_is_free(port)


def test_without_room_below_the_ephemeral_range_the_kernel_chooses(monkeypatch: pytest.MonkeyPatch) -> None:
    low = _ephemeral_low()
    monkeypatch.setattr(server, "_ephemeral_low", lambda: 20500)
    port = free_port()
    assert port >= low and port_is_free(port)
