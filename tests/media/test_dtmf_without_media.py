"""DTMF sent without media (``callgw-dial --dtmf`` and no ``--play``): each digit is its own
RFC 4733 event on the gateway leg -- its own RTP timestamp, each ended -- so the gateway gets
every digit, not only the first (they used to share the timestamp of a stream that never
started). Judged on the wire (dumpcap + tshark) against sipp; the Playout's clock in
tests/media/test_media_playout.py-style unit checks below."""
from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import reactor

from callgw.media.playout import Playout
from test_media_calls import dial, sipp_gateway, start, url, within
from test_media_calls_wire import Capture, port_filter, rtp_packets
from tests.callpath.callgw_env import prepare_db

pytestmark = pytest.mark.peers("sipp", "dumpcap", "tshark")


def test_event_timestamps_advance_with_time_and_never_repeat():
    p = Playout("PCMU", "PCMU", 0, 1234, timestamp_offset=1000)
    first = p.event_timestamp(10.0)               # no audio was ever sent
    assert first == 1000
    assert p.event_timestamp(10.5) == 1000 + 4000  # half a second later on the 8 kHz clock
    assert p.event_timestamp(10.5) == 1000 + 4000 + 160    # same instant: still a new one
    assert p.current_timestamp(11.0) == 1000 + 8000        # the SR's clock is not pushed


@pytest_twisted.inlineCallbacks
def test_dtmf_without_media_sends_each_digit_as_its_own_event(tmp_path):
    sipp = sipp_gateway(tmp_path, "uas_dtmf.xml")
    prepare_db(tmp_path, gateways=[("gw1", sipp.port, ["+49"], {})])
    gw = yield start(tmp_path)
    capture = Capture(tmp_path / "dtmf.pcapng", port_filter(gw, sipp))
    try:
        yield capture.start()
        code, out = yield dial("--server", url(gw, "udp"), "--user", "alice",
                               "--duration", "3.5", "--dtmf", "159#", "+4930123456")
        assert code == 0, out
        assert "sent dtmf 159#" in out
        assert (yield within(sipp.wait(reactor), 30)) == 0, sipp.log()
        yield capture.stop()
        rows = yield rtp_packets(capture.path, "rtp.timestamp", "rtpevent.event_id",
                                 "rtpevent.end_of_event")
        events = [r for r in rows if r[1] == sipp.media_port and r[2] == 101]
        digits: dict[str, list] = {}
        for _, _, _, timestamp, event, end in events:
            entry = digits.setdefault(timestamp, [event, False])
            assert entry[0] == event, (timestamp, entry, event)   # one digit per timestamp
            entry[1] = entry[1] or end in ("1", "True")
        sent = "".join("0123456789*#ABCD"[int(e)] for e, _ in digits.values())
        print(f"gateway leg without media: {len(events)} RFC 4733 packets, digits {sent!r}, "
              f"timestamps {list(digits)}")
        assert sent == "159#"
        assert all(ended for _, ended in digits.values())
    finally:
        yield capture.stop()
        yield gw.stopService()
        sipp.stop()
