"""Helpers for the relay tests: UDP peers on 127.0.0.1, waiting with a bound, tones, Goertzel."""
import math
import random
import struct

from twisted.internet import reactor, task
from twisted.internet.protocol import DatagramProtocol

from callgw.media import MediaRelay, PortRange
from protocols.rtp import g711


class Peer(DatagramProtocol):
    """A UDP peer on an OS-picked port that records what it receives."""

    def __init__(self):
        self.received = []

    def datagramReceived(self, data, addr):
        self.received.append((data, addr))

    def send(self, data, addr):
        self.transport.write(data, addr)


def peer():
    p = Peer()
    port = reactor.listenUDP(0, p, interface="127.0.0.1")
    p.port = port
    p.addr = ("127.0.0.1", port.getHost().port)
    return p


def relay(**kw):
    low = random.randrange(40000, 58000, 2)
    return MediaRelay(reactor, PortRange(low, low + 400), **kw)


async def wait_until(condition, timeout=3.0, step=0.01):
    waited = 0.0
    while not condition():
        if waited >= timeout:
            raise AssertionError("condition not met within %.1f s" % timeout)
        await task.deferLater(reactor, step, lambda: None)
        waited += step


async def sleep(seconds):
    await task.deferLater(reactor, seconds, lambda: None)


def rtp(pt, seq, ts, ssrc, payload=b"\xff" * 160, marker=False):
    return struct.pack("!BBHII", 0x80, pt | (0x80 if marker else 0), seq & 0xFFFF,
                       ts & 0xFFFFFFFF, ssrc) + payload


def tone(codec, frames, freq=1000.0, amplitude=8000, start=0):
    """``frames`` 20 ms frames of a sine in ``codec``."""
    n = 160 * frames
    samples = [int(amplitude * math.sin(2 * math.pi * freq * (start + i) / 8000.0))
               for i in range(n)]
    codes = g711.encode(codec, struct.pack("=%dh" % n, *samples))
    return [codes[i * 160:(i + 1) * 160] for i in range(frames)]


def goertzel(samples, freq, rate=8000):
    k = 2.0 * math.cos(2.0 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + k * s1 - s2, s1
    return s1 * s1 + s2 * s2 - k * s1 * s2


def is_tone(codec, payload, freq=1000.0):
    """True when ``freq`` dominates the decoded payload by 20 dB over other test bins."""
    samples = g711.decode_samples(codec, payload)
    main = goertzel(samples, freq)
    others = [goertzel(samples, f) for f in (400.0, 700.0, 1300.0, 1700.0, 2500.0)]
    return main > 100 * max(others)
