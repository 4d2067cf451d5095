"""realm.proxied: a connection behind HAProxy is connected to realm only
once its PROXY header has given the player's address (in memory, on a
`task.Clock`; tests/test_cluster_limits.py runs the real HAProxy)."""

from __future__ import annotations

import pytest_twisted
from twisted.internet import endpoints, reactor, task
from twisted.internet.address import IPv4Address
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import StringTransportWithDisconnection

from realm import proxied
from realm.http import HTTPFactory
from realm.routes import Response
from realm.testing_web import RawClient, attach

HEADER = b"PROXY TCP4 192.0.2.7 10.0.0.1 40001 2346\r\n"


class Recorder(Protocol):
    def __init__(self) -> None:
        self.peer: object = None
        self.data = b""
        self.lost = False

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.peer = self.transport.getPeer()

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: object = None) -> None:
        self.lost = True


def connection(clock: task.Clock) -> tuple[Recorder, proxied.HeaderFirst,
                                           StringTransportWithDisconnection]:
    recorder = Recorder()
    factory = proxied.HeaderFirstFactory(Factory.forProtocol(lambda: recorder), clock)
    wrapper = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 50000))
    assert isinstance(wrapper, proxied.HeaderFirst)
    transport = StringTransportWithDisconnection(
        peerAddress=IPv4Address("TCP", "127.0.0.1", 50000))
    transport.protocol = wrapper
    wrapper.makeConnection(transport)
    return recorder, wrapper, transport


def test_connected_with_the_players_address_once_the_header_is_read() -> None:
    clock = task.Clock()
    recorder, wrapper, _ = connection(clock)
    assert recorder.peer is None  # not yet: the header has not come
    wrapper.dataReceived(HEADER[:20])
    assert recorder.peer is None
    wrapper.dataReceived(HEADER[20:] + b"arya@north\n")
    assert recorder.peer == IPv4Address("TCP", "192.0.2.7", 40001)
    assert recorder.data == b"arya@north\n"
    wrapper.dataReceived(b"hello\n")
    assert recorder.data == b"arya@north\nhello\n"
    clock.advance(proxied.HEADER_TIMEOUT * 2)  # the header's deadline is gone
    assert not recorder.lost


def test_no_header_in_time_drops_the_connection_unseen() -> None:
    clock = task.Clock()
    recorder, _, transport = connection(clock)
    clock.advance(proxied.HEADER_TIMEOUT)
    assert not transport.connected
    assert recorder.peer is None and not recorder.lost


def test_not_a_proxy_header_is_closed_unseen() -> None:
    clock = task.Clock()
    recorder, wrapper, transport = connection(clock)
    wrapper.dataReceived(b"Lord@north\r\n")
    assert not transport.connected
    assert recorder.peer is None and not recorder.lost
    assert not clock.getDelayedCalls()  # the header's deadline went with it


def test_listening_unwraps_haproxy_descriptions_only() -> None:
    assert proxied.listening("haproxy:tcp:2346:interface=10.0.0.1") == (
        "tcp:2346:interface=10.0.0.1")
    assert proxied.listening("tcp:2345") is None


def v2(command: int, family: int, block: bytes) -> bytes:
    return proxied.V2 + bytes([0x20 | command, family]) + len(block).to_bytes(2, "big") + block


def test_the_header_in_both_versions() -> None:
    import ipaddress

    from twisted.internet.address import IPv6Address

    assert proxied.parse(HEADER + b"rest") == (IPv4Address("TCP", "192.0.2.7", 40001),
                                                 len(HEADER))
    six = b"PROXY TCP6 2001:db8::7 2001:db8::1 40002 2346\r\n"
    assert proxied.parse(six) == (IPv6Address("TCP", "2001:db8::7", 40002), len(six))
    assert proxied.parse(b"PROXY UNKNOWN\r\n") == (None, 15)
    block = (ipaddress.IPv4Address("198.51.100.9").packed + bytes(4)
             + (40003).to_bytes(2, "big") + (2346).to_bytes(2, "big"))
    header = v2(1, 0x11, block)
    assert proxied.parse(header + b"x") == (IPv4Address("TCP", "198.51.100.9", 40003),
                                             len(header))
    assert proxied.parse(v2(0, 0x00, b"")) == (None, 16)  # LOCAL: the balancer's own check
    # Cut anywhere: more is needed, never a wrong answer.
    for cut in range(1, len(header)):
        assert proxied.parse(header[:cut]) is None
    for cut in range(1, len(HEADER) - 1):
        assert proxied.parse(HEADER[:cut]) is None


def test_what_is_no_header() -> None:
    import pytest

    for data in (b"GET / HTTP/1.1\r\n", b"PROXY TCP4 x y 1 2\r\n", b"PROXY " + b"9" * 120,
                 proxied.V2 + b"\x31\x11\x00\x00", proxied.V2 + b"\x21\x11\xff\xff",
                 b"PROXY TCP4 ::1 ::1 1 2\r\n", b"PROXY TCP6 192.0.2.1 ::1 1 2\r\n",
                 b"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n",
                 b"PROXY TCP4 192.0.2.1 192.0.2.2 99999 2\r\n",
                 b"PROXY TCP4 192.0.2.1 192.0.2.2 -5 2\r\n",
                 b"PROXY TCP4 192.0.2.1 192.0.2.2 1 +2\r\n",
                 v2(1, 0x11, bytes(4)), v2(1, 0x21, bytes(12))):
        with pytest.raises(proxied.BadHeader):
            proxied.parse(data)


@pytest_twisted.ensureDeferred
async def test_a_client_that_half_closes_behind_the_balancer_is_answered() -> None:
    """`nc -N`, HAProxy in tcp mode passing the FIN on: the web answers what
    was asked, then closes, as it does without the balancer."""
    site = HTTPFactory({"/": lambda request: Response(200, b"hi")}, reactor)
    factory = proxied.HeaderFirstFactory(site, reactor)
    port = await endpoints.TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
    try:
        client = RawClient(HEADER + b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        await attach(port.getHost().port, client)
        client.transport.loseWriteConnection()  # type: ignore[attr-defined]
        await client.until(lambda: client.gone, "the answer, then the close")
        assert client.data.startswith(b"HTTP/1.1 200 ") and client.data.endswith(b"hi")
    finally:
        await port.stopListening()
