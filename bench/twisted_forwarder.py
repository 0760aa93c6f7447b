"""A minimal Twisted UDP forwarder: the reference the callgw relay is measured against.

For each call two ``DatagramProtocol`` ports on 127.0.0.1 (OS-picked); what one receives goes
out of the other to the address that last sent there (the simplest latching). Nothing else:
no statistics, no payload-type check. Run by bench/relay.py:

    python bench/twisted_forwarder.py --calls N --lifetime SECONDS

prints one JSON line ``{"dst": [[host, port], ...]}`` (client port, gateway port per call) and
stops by itself after ``--lifetime`` seconds (or on SIGTERM), printing its CPU use on stderr.
"""
import argparse
import json
import resource
import sys

from twisted.internet import epollreactor

epollreactor.install()

from twisted.internet import reactor  # noqa: E402
from twisted.internet.protocol import DatagramProtocol  # noqa: E402


class Leg(DatagramProtocol):
    """One side of one call."""

    peer = None
    remote = None

    def datagramReceived(self, data, addr):
        self.remote = addr
        other = self.peer
        if other.remote is not None:
            other.transport.write(data, other.remote)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, required=True)
    parser.add_argument("--lifetime", type=float, default=60.0)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    dst = []
    for _ in range(args.calls):
        a, b = Leg(), Leg()
        a.peer, b.peer = b, a
        pa = reactor.listenUDP(0, a, interface="127.0.0.1")
        pb = reactor.listenUDP(0, b, interface="127.0.0.1")
        dst += [["127.0.0.1", pa.getHost().port], ["127.0.0.1", pb.getHost().port]]
    print(json.dumps({"dst": dst}), flush=True)
    reactor.callLater(args.lifetime, reactor.stop)
    reactor.run()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"cpu": usage.ru_utime + usage.ru_stime}), file=sys.stderr)


if __name__ == "__main__":
    main()
