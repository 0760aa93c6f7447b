"""Call quality for one relay session: RTCP handling and the statistics dict.

RTCP (RFC 3550 6): each side's RTCP port latches to its first sender like RTP does. When both
sides speak RTP the relay is transparent and forwards RTCP to the other side's RTCP address
(latched, else the latched RTP host with port + 1, else the SDP's); report blocks the sides send
are kept as what each side says it receives. In relayed mode the relay is the gateway's RTP
peer, so every ``rtcp_interval`` it sends the gateway an SR (with a report block about the
gateway's stream, LSR/DLSR from the gateway's last SR) plus an SDES CNAME, and the gateway's
report about our stream yields the round-trip time (RFC 3550 6.4.1).

``statistics`` gives per-direction packets, octets, loss, jitter and an E-model MOS estimate
(``protocols.rtp.stats``), the latched addresses, each side's local RTP port and the RTT when
known. Every packet callgw received is accounted for: ``packets`` = ``forwarded`` +
``discarded`` + ``events`` (RFC 4733 packets delivered as DTMF); ``after_end`` says how many of
the discarded ones were read only as the session closed; ``lost`` counts what never arrived. ``loss`` and ``mos`` describe what the receiving side gets, so they count lost and
discarded packets together. Client to gateway in relayed mode: ``discarded`` frames came too
late or twice for the playout (or before it existed); ``forwarded`` is the audio RTP actually
sent to the gateway (the playout fills gaps, so it can exceed ``packets``; ``filled_ms``),
``unsent`` what the playout produced that could not be sent, ``after_end_ms`` the client's audio
still waiting in the playout when the call ended.

Tests: tests/media/test_media_relay.py, tests/media/test_media_relayed.py.
"""
from __future__ import annotations

from twisted.logger import Logger

from protocols.rtp.packet import (
    ReceiverReport, ReportBlock, RtpParseError, SdesChunk, SDES_CNAME, SenderReport,
    SourceDescription, build_rtcp, ntp_middle32, ntp_timestamp, parse_rtcp)
from protocols.rtp.stats import G711_PLC, mos_estimate, round_trip_time

log = Logger()

_OTHER = {"client": "gateway", "gateway": "client"}
CNAME = b"callgw-relay"


def _address(addr):
    return "%s:%d" % (addr[0], addr[1]) if addr else None


class SessionQuality:
    """RTCP and statistics of one ``RelaySession``."""

    def __init__(self, session):
        self.session = session
        self.last_sr = {}        # side -> (LSR middle-32, arrival time)
        self.remote = {}         # side -> the last ReportBlock that side sent
        self.rtt = None          # seconds
        self.rtcp_sent = 0
        self._prior = (0, 0)     # expected, received at our last report about the gateway
        self._call = None

    # --- RTCP in ---------------------------------------------------------------------------

    def rtcp_packet(self, endpoint, data: bytes, addr, now: float):
        """An RTCP datagram arrived on ``endpoint`` (or multiplexed on the RTP port)."""
        if endpoint.latched is None:
            endpoint.latched = addr
        elif addr != endpoint.latched:
            return
        try:
            packets = parse_rtcp(data)
        except RtpParseError:
            return
        endpoint.packets += 1
        side = endpoint.side
        session = self.session
        ours = session.playout.ssrc if session.playout is not None else None
        for packet in packets:
            if isinstance(packet, SenderReport):
                self.last_sr[side] = (ntp_middle32(packet.ntp_timestamp), now)
            if isinstance(packet, (SenderReport, ReceiverReport)):
                for block in packet.reports:
                    self.remote[side] = block
                    if ours is not None and block.ssrc == ours:
                        rtt = round_trip_time(block, ntp_timestamp(now))
                        if rtt is not None:
                            self.rtt = rtt
        if session.client is None:
            self._forward(side, data)

    def _forward(self, side: str, data: bytes):
        session = self.session
        other = _OTHER[side]
        target = session.rtcp.get(other)
        rtp = session.endpoints.get(other)
        if target is None or rtp is None or not rtp.send_allowed:
            return
        destination = target.latched
        if destination is None and rtp.latched is not None:
            destination = (rtp.latched[0], rtp.latched[1] + 1)
        destination = destination or target.sdp_address
        if destination is None:
            return
        try:
            target.sock.sendto(data, destination)
        except OSError:
            pass

    # --- RTCP out (relayed mode) ----------------------------------------------------------

    def start(self):
        """Start sending SRs to the gateway when in relayed mode (idempotent)."""
        session = self.session
        if self._call is None and session.client is not None and \
                session.relay.rtcp_interval and not session.closed:
            self._call = session.clock.callLater(session.relay.rtcp_interval, self._tick)

    def stop(self):
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def close(self):
        """The session closed (its final statistics are taken): stop, and let go of it."""
        self.stop()
        self.session = None

    def _tick(self):
        self._call = None
        session = self.session
        if session.closed:
            return
        try:
            self.send_report(session.clock.seconds())
        except Exception:
            log.failure("media {call_id}: RTCP report failed", call_id=session.call_id)
        self.start()

    def report_block(self, now: float) -> ReportBlock | None:
        """Our reception report about the gateway's stream, or None before any packet."""
        gateway = self.session.endpoints.get("gateway")
        if gateway is None or gateway.ssrc is None or gateway.base_seq is None:
            return None
        expected = gateway.expected()
        received = gateway.packets - gateway.packets_at_base
        expected_interval = expected - self._prior[0]
        lost_interval = expected_interval - (received - self._prior[1])
        self._prior = (expected, received)
        fraction = (lost_interval << 8) // expected_interval \
            if expected_interval > 0 and lost_interval > 0 else 0
        lsr, dlsr = 0, 0
        if "gateway" in self.last_sr:
            lsr, arrival = self.last_sr["gateway"]
            dlsr = int((now - arrival) * 65536) & 0xFFFFFFFF
        return ReportBlock(gateway.ssrc, min(fraction, 255), min(gateway.lost(), 0x7FFFFF),
                           (gateway.cycles + gateway.max_seq) & 0xFFFFFFFF,
                           int(gateway.jitter) & 0xFFFFFFFF, lsr, dlsr)

    def send_report(self, now: float):
        """Send one SR + SDES to the gateway's RTCP address (relayed mode)."""
        session = self.session
        playout = session.playout
        rtcp = session.rtcp.get("gateway")
        rtp = session.endpoints.get("gateway")
        if playout is None or rtcp is None or rtp is None:
            return
        block = self.report_block(now)
        reports = (block,) if block is not None else ()
        sr = SenderReport(playout.ssrc, ntp_timestamp(now), playout.current_timestamp(now),
                          playout.packets_out, playout.bytes_out - 12 * playout.packets_out,
                          reports)
        data = build_rtcp([sr, SourceDescription((SdesChunk(playout.ssrc,
                                                             ((SDES_CNAME, CNAME),)),))])
        destination = rtcp.latched
        if destination is None and rtp.destination is not None:
            destination = (rtp.destination[0], rtp.destination[1] + 1)
        if destination is None:
            return
        try:
            rtcp.sock.sendto(data, destination)
        except OSError:
            return
        self.rtcp_sent += 1

    # --- statistics ------------------------------------------------------------------------

    def _mos(self, loss: float, jitter_ms: float) -> float:
        latency_ms = self.rtt * 500.0 if self.rtt is not None else 0.0
        return mos_estimate(loss, jitter_ms, latency_ms, G711_PLC)

    def _rtp_direction(self, source, target, forwarded=None, discarded=0) -> dict:
        """One RTP source's figures. ``packets`` were received from it; each was either
        ``forwarded`` (sent on), ``discarded`` (callgw did not send it on: nowhere to send, a
        send that failed, a transport that did not take it, or -- ``after_end``, a part of
        ``discarded`` -- still queued when the session closed) or, for RFC 4733, counted in
        ``events``; ``lost`` never arrived (sequence gaps, RFC 3550 A.3). ``loss`` and ``mos``
        are those of what the far side gets during the call: lost and discarded packets
        together, less those read only as the call ended."""
        expected = source.expected()
        lost = source.lost()
        discarded += source.discarded + source.after_end
        if target is not None:
            discarded += target.send_errors
        impaired = lost + discarded - source.after_end
        loss = min(1.0, impaired / expected) if expected > 0 else 0.0
        jitter_ms = source.jitter * 1000.0 / source.clock_rate
        return {
            "packets": source.packets, "octets": source.octets, "lost": lost,
            "loss": round(loss, 5), "jitter_ms": round(jitter_ms, 3),
            "forwarded": forwarded if forwarded is not None else
            (target.sent_packets if target is not None else 0),
            "discarded": discarded, "events": source.events, "after_end": source.after_end,
            "dropped": source.dropped, "ssrc": source.ssrc,
            "mos": self._mos(loss, jitter_ms),
        }

    def statistics(self, now: float) -> dict:
        """The session's figures at ``now``; see the module docstring."""
        session = self.session
        client = session.endpoints.get("client")
        gateway = session.endpoints.get("gateway")
        relayed = session.client is not None
        out = {"call_id": session.call_id, "mode": "relayed" if relayed else "rtp",
               "rtt_ms": round(self.rtt * 1000.0, 2) if self.rtt is not None else None,
               "latched": {side: _address(ep.latched) for side, ep in session.endpoints.items()},
               "ports": {side: ep.port for side, ep in session.endpoints.items()},
               "reported": {side: {"fraction_lost": b.fraction_lost,
                                   "cumulative_lost": b.cumulative_lost, "jitter": b.jitter}
                            for side, b in self.remote.items()}}
        empty = {"packets": 0, "octets": 0, "lost": 0, "loss": 0.0, "jitter_ms": 0.0,
                 "forwarded": 0, "discarded": 0, "events": 0, "after_end": 0, "dropped": 0,
                 "ssrc": None,
                 "mos": None}
        if relayed:
            stats = session.client.stats
            playout = session.playout
            relayed_client = session.client
            discarded = relayed_client.frames_dropped + (
                playout.frames_late + playout.frames_duplicate if playout else 0)
            expected = stats.expected
            loss = min(1.0, (max(0, stats.cumulative_lost) + discarded) / expected) \
                if expected > 0 else 0.0
            out["client_to_gateway"] = {
                "packets": stats.received, "octets": stats.octets,
                "lost": max(0, stats.cumulative_lost), "loss": round(loss, 5),
                "jitter_ms": round(stats.jitter_ms, 3),
                "forwarded": relayed_client.audio_out, "unsent": relayed_client.audio_unsent,
                "discarded": discarded,
                "dropped": discarded,
                "filled_ms": (playout.samples_filled // 8) if playout else 0,
                "after_end_ms": (playout.backlog_samples() // 8) if playout else 0,
                "ssrc": playout.ssrc if playout else None,
                "mos": self._mos(loss, stats.jitter_ms),
            }
            if gateway is not None:
                out["gateway_to_client"] = self._rtp_direction(
                    gateway, None, forwarded=relayed_client.sent_packets,
                    discarded=relayed_client.discarded)
            else:
                out["gateway_to_client"] = dict(empty)
        else:
            out["client_to_gateway"] = self._rtp_direction(client, gateway) if client else \
                dict(empty)
            out["gateway_to_client"] = self._rtp_direction(gateway, client) if gateway else \
                dict(empty)
        return out
