"""Peers started by the tests survive a port taken between the pick and their bind
(tests/ports.py): sipp whose SIP, media or control port is held by someone else, baresip whose
SIP port is held, are started again on other ports, and the test goes on."""
from __future__ import annotations

import socket

import pytest
import pytest_twisted

from tests.peers import require_peer
from tests.ports import PortTaken, bound_by, free_port, port_taken, retry_ports
from tests.sip.baresip import Baresip
from tests.sip.sipp import Sipp


def test_free_port_gives_even_runs_free_for_both_kinds():
    port = free_port(both=True, even=True)
    assert port % 2 == 0 and 25000 <= port < 27000
    for p in range(port, port + 4):
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            with socket.socket(socket.AF_INET, kind) as s:
                s.bind(("127.0.0.1", p))


def test_bind_failures_are_recognized_in_each_peers_words():
    assert port_taken("Unable to bind remote control socket to UDP port 25991, errno = 98 "
                      "(Address already in use)")                       # sipp
    assert port_taken("ua: SIP Transport failed: Address already in use")   # baresip
    assert port_taken("twisted.internet.error.CannotListenError: Couldn't listen on "
                      "127.0.0.1:25000: [Errno 98] Address already in use.")
    assert not port_taken("Successful call 1")


def test_retry_ports_tries_again_then_gives_up():
    calls = []

    def start():
        calls.append(1)
        if len(calls) < 3:
            raise PortTaken("taken")
        return "up"
    assert retry_ports(start) == "up" and len(calls) == 3
    with pytest.raises(PortTaken):
        retry_ports(lambda: (_ for _ in ()).throw(PortTaken("always")), attempts=2)


@pytest.mark.parametrize("which", ["port", "control_port", "media_port"])
def test_sipp_starts_on_other_ports_when_its_own_are_taken(tmp_path, which):
    require_peer("sipp")
    sipp = Sipp("uas_answer.xml", tmp_path, timeout=5)
    taken = getattr(sipp, which)
    squatter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    squatter.bind(("127.0.0.1", taken))
    try:
        sipp.start()
        assert sipp.process.poll() is None, sipp.log()
        assert getattr(sipp, which) != taken
        assert bound_by(sipp.process.pid, sipp.port)
        assert bound_by(sipp.process.pid, sipp.control_port)
        assert bound_by(sipp.process.pid, sipp.media_port)
    finally:
        sipp.stop()
        squatter.close()


@pytest_twisted.inlineCallbacks
def test_baresip_starts_on_another_port_when_its_own_is_taken(tmp_path):
    require_peer("baresip")
    tone = tmp_path / "tone.wav"
    from tests.media.test_media_calls import write_tone
    write_tone(tone, seconds=1.0)
    peer = Baresip(tmp_path, tone, seconds=10)
    taken = peer.sip_port
    squatter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    squatter.bind(("127.0.0.1", taken))
    try:
        yield peer.start()
        assert peer.sip_port != taken
        assert bound_by(peer.transport.pid, peer.sip_port)
    finally:
        squatter.close()
        yield peer.stop()
