"""Free TCP ports of 127.0.0.1 for the servers a test starts itself."""

from __future__ import annotations

import socket


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
