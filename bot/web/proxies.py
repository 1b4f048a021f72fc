"""The client's address behind a reverse proxy, trusting forwarded headers only from configured proxies.

`KEPU_TRUSTED_PROXIES` lists the proxies' addresses or networks (comma-separated, e.g.
`127.0.0.1, 10.0.0.0/24`). `X-Forwarded-For` (and `X-Forwarded-Proto`) are read only when the TCP
peer is one of them; the client is then the right-most address in X-Forwarded-For that is not a
trusted proxy, so a client cannot choose its address by sending the header itself. Without the
variable, every request's address is its TCP peer. X-Forwarded-For from any other peer is ignored
with a warning: usually a proxy that is missing from KEPU_TRUSTED_PROXIES, which makes every client
behind it share the proxy's address in the lock-out.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import os

logger = logging.getLogger(__name__)

ENV = "KEPU_TRUSTED_PROXIES"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=8)
def parse_networks(text: str) -> tuple[Network, ...]:
    """The networks of a comma-separated list; invalid entries are logged and left out."""
    networks: list[Network] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            logger.warning("admin: ignoring %s entry %r (not an address or network)", ENV, item)
    return tuple(networks)


def trusted_proxies() -> tuple[Network, ...]:
    """The configured proxies (KEPU_TRUSTED_PROXIES)."""
    return parse_networks(os.environ.get(ENV, ""))


def is_trusted(address: str, trusted: tuple[Network, ...]) -> bool:
    """Whether `address` is one of the trusted proxies."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def client_address(peer: str, forwarded_for: list[str], trusted: tuple[Network, ...]) -> str:
    """The client's address: the peer, or for a trusted peer the last untrusted X-Forwarded-For hop."""
    if not is_trusted(peer, trusted):
        if any(value.strip() for value in forwarded_for):
            logger.warning("admin: X-Forwarded-For from %s ignored: that peer is not in %s; if it is your "
                           "reverse proxy, add it, or every client behind it counts as %s", peer, ENV, peer)
        return peer or "unknown"
    address = peer
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",")]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            break  # garbage left of the proxies' own entries: keep the last good hop
        address = hop
        if not is_trusted(hop, trusted):
            break
    return address


def forwarded_https(peer: str, forwarded_proto: str | None, trusted: tuple[Network, ...]) -> bool:
    """Whether a trusted proxy says the client used https."""
    return is_trusted(peer, trusted) and (forwarded_proto or "").split(",")[0].strip().lower() == "https"
