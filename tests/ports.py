"""Free TCP ports of 127.0.0.1 for the servers a test starts itself."""

from __future__ import annotations

import socket
from collections.abc import Mapping


def free_port(avoid: set[int] | frozenset[int] = frozenset()) -> int:
    """A TCP port nobody listens on right now (the kernel's choice), none of `avoid`.

    The port is bound and closed again, so it is also the address of "a server that is not
    there" for tests of unreachable services."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in avoid:
            return port


def web_test_ports(environ: Mapping[str, str]) -> tuple[int, int]:
    """(bot port, action-server port) for the model-backed browser tests: KEPU_WEB_TEST_PORT and
    KEPU_WEB_TEST_ACTIONS_PORT when set, otherwise free ports, never the same one. Port + 50 is not
    assumed free: another checkout's action server may listen there."""
    port = int(environ.get("KEPU_WEB_TEST_PORT") or free_port())
    actions = int(environ.get("KEPU_WEB_TEST_ACTIONS_PORT") or free_port(avoid={port}))
    return port, actions
