"""tests/ports.py: the ports the test servers are started on are free, never guessed."""

from __future__ import annotations

import socket

from tests.ports import free_port, web_test_ports


def test_the_action_server_port_is_free_even_when_port_plus_50_is_taken() -> None:
    with socket.socket() as taken:  # someone else's action server on PORT + 50
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        port, actions = web_test_ports({"KEPU_WEB_TEST_PORT": str(busy - 50)})
        assert port == busy - 50 and actions not in (busy, port)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", actions))  # nobody listens there


def test_free_ports_without_settings_and_the_settings_when_given() -> None:
    port, actions = web_test_ports({})
    assert port != actions
    assert web_test_ports({"KEPU_WEB_TEST_PORT": "5999", "KEPU_WEB_TEST_ACTIONS_PORT": "6001"}) == (5999, 6001)
    assert free_port(avoid={port}) != port
