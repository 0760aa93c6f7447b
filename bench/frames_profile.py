"""Per-frame cost of relayed-mode media (path (b)) through the real front-end UDP path.

A fixed workload, so that it can be profiled and counted (CPU time, cProfile, or instructions
under ``valgrind --tool=callgrind``) on a busy machine, where wall-clock throughput is noise:

- ``--calls`` client sessions log in over UDP (token login, so datagrams are sealed from the
  welcome on, as in production) to a ``ClientDatagramProtocol`` + ``SessionManager`` on a
  ``task.Clock``; each gets a relay-mode ``CallMediaSession`` from a real ``CallMedia`` (real
  RTP sockets on 127.0.0.1, gateway side connected to a sink socket that is drained and
  ignored);
- each 20 ms tick, every call's client sends one sealed 160-octet PCMU media frame (made in
  advance by the client library's own channel) into ``datagramReceived``, and the gateway
  side gets one RTP packet into ``ClientMedia.to_client`` (what the endpoint fast path calls),
  which goes back to the client as a sealed media frame written to a fake port;
- the clock advances 20 ms (the playout's pacing timers run).

Reports microseconds of CPU per frame (one frame each way counts as two) over ``--ticks``
ticks after a warm-up. ``--profile`` prints the top of a cProfile; ``--measure-only`` is the
part to run under callgrind (``--toggle-collect=`` is not needed: set-up is small).

    .venv/bin/python bench/frames_profile.py [--calls 50] [--ticks 500] [--profile]
    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out .venv/bin/python \
        bench/frames_profile.py --calls 20 --ticks 100
"""
import argparse
import os
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

RTP = struct.Struct("!BBHII")


class _Port:
    """A fake UDP port: the server's writes are counted (or handed to ``deliver``)."""

    def __init__(self):
        self.deliver = None
        self.written = 0

    def write(self, data, addr):
        self.written += 1
        if self.deliver is not None:
            self.deliver(data, addr)

    def stopListening(self):
        return None


class _Leg:
    """What ``CallMediaSession.client_connected`` reads of a client leg."""

    def __init__(self, conn, key):
        self.conn, self.key, self.codec = conn, key, "PCMU"

    def use_media(self, media):
        self.media = media


def build(calls, tmp):
    from twisted.internet import reactor, task

    from callgw.callserver.media import CallMedia
    from callgw.client.links import UdpLink
    from callgw.client.session import ClientSession
    from callgw.callserver.events import MediaDescription
    from callgw.frontend.connection import SessionManager
    from callgw.frontend.udp import ClientDatagramProtocol
    from protocols.client.framing import MediaFrame, encode_media
    from tests.frontend.gateway import FakeFrontEnd
    from tests.frontend.test_connection import Store
    from tests.helpers import make_config

    import socket
    clock = task.Clock()
    clock.advance(1_800_000_000)
    media = CallMedia(reactor, {"address": "127.0.0.1", "rtp_ports": "27000-28999",
                                "inactivity_timeout": 0}, clock=clock)
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    sink.setblocking(False)

    class FrontEnd(FakeFrontEnd):
        def client_media(self, conn, frame):
            if not media.client_frame(conn, frame):
                raise AssertionError("frame dropped")

    frontend = FrontEnd()
    manager = SessionManager(Store(), frontend, make_config(tmp), clock)
    server = ClientDatagramProtocol(manager)
    server.transport = _Port()
    clients = []
    for i in range(calls):
        addr = ("127.0.0.1", 40000 + i)
        link = UdpLink(clock, "127.0.0.1", 7060)
        out = _Port()
        link.transport = out
        out.deliver = lambda data, _addr, a=addr: server.datagramReceived(data, a)
        session = ClientSession(link, clock=clock)
        token, _ = manager.tokens.issue("alice", clock.seconds())
        # the server's datagrams go to this client's link while logging in
        server.transport.deliver = lambda data, a, link=link: link.datagramReceived(data, a)
        welcome = session.login_token(token)
        for _ in range(100):
            clock.advance(0.01)
            if welcome.called:
                break
        assert welcome.called, "login did not complete"
        conn = server.peers[addr].conn
        key = os.urandom(16)
        cms = media.session(f"call-{i}")
        leg = _Leg(conn, key)
        cms.bind(leg)
        port = cms.allocate("b").result[1]
        cms.connect("b", MediaDescription("127.0.0.1", sink.getsockname()[1], ("PCMU",)))
        cms.client_connected(leg)
        gateway = cms.relay_session.endpoints["gateway"]
        clients.append((addr, link, out, key, cms, gateway, port))
    server.transport.deliver = None
    # from now on the server writes through a real UDP port to one socket per client
    server.transport = None
    port = reactor.listenUDP(0, server, interface="127.0.0.1")
    sinks = []
    for i, client in enumerate(clients):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        addr = s.getsockname()
        peer = server.peers.pop(client[0])
        peer.addr = addr
        server.peers[addr] = peer
        sinks.append(s)
        clients[i] = (addr,) + client[1:]
    server.sinks = sinks
    server.port = port
    return clock, server, clients, media, sink, encode_media, MediaFrame


def frames_for(clients, ticks, encode_media, MediaFrame):
    """Every call's sealed datagrams for ``ticks`` ticks, made by its client link."""
    per_tick = [[] for _ in range(ticks)]
    for addr, link, out, key, *_ in clients:
        captured = []
        out.deliver = lambda data, _a, c=captured: c.append(data)
        for t in range(ticks):
            link.send_media(encode_media(MediaFrame(key, 0, t & 0xFFFF, (t * 160) & 0xFFFFFFFF,
                                                    bytes([0xFF]) * 160)))
        for t, data in enumerate(captured):
            per_tick[t].append((data, addr))
    return per_tick


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--ticks", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--profile", action="store_true")
    opts = parser.parse_args()
    import tempfile
    from pathlib import Path
    with tempfile.TemporaryDirectory() as tmp:
        clock, server, clients, media, sink, encode_media, MediaFrame = build(opts.calls,
                                                                              Path(tmp))
        total = opts.warmup + opts.ticks
        per_tick = frames_for(clients, total, encode_media, MediaFrame)
        rtp = [[RTP.pack(0x80, 0, t & 0xFFFF, t * 160, 0x1234) + bytes([0xFF]) * 160
                for t in range(total)]]
        receive = server.datagramReceived
        gateways = [c[5] for c in clients]
        to_client = [c[4].relay_session.client.to_client for c in clients]
        poller = media.relay.poller

        def written():
            n = 0
            for s in server.sinks:
                try:
                    while True:
                        s.recv(2048)
                        n += 1
                except BlockingIOError:
                    pass
            return n
        written()
        def tick(t):
            for data, addr in per_tick[t]:
                receive(data, addr)
            packet = rtp[0][t]
            for send in to_client:
                send(packet)
            clock.advance(0.02)
            try:
                while True:
                    sink.recv(2048)
            except BlockingIOError:
                pass
            back[0] += written()

        back = [0]
        for t in range(opts.warmup):
            tick(t)
        back[0] = 0
        profiler = None
        if opts.profile:
            import cProfile
            profiler = cProfile.Profile()
            profiler.enable()
        cpu0 = time.process_time()
        for t in range(opts.warmup, total):
            tick(t)
        cpu = time.process_time() - cpu0
        if profiler is not None:
            profiler.disable()
        frames = opts.ticks * len(clients)
        back = back[0]
        out = sum(g.sent_packets for g in gateways)
        print(f"calls {len(clients)} ticks {opts.ticks}: {frames} frames in, {back} frames out, "
              f"{out} RTP out; CPU {cpu * 1e6 / (frames + back):.2f} us per frame "
              f"(each way), {cpu * 1e6 / frames:.2f} us per frame pair")
        assert back == frames, "frames toward the client were lost"
        del poller
        if profiler is not None:
            import pstats
            pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
        media.close()
        sink.close()


if __name__ == "__main__":
    main()
