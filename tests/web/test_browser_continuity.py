"""Call continuity and the echo number, in the page (issue 12, items 4 and 5), in headless
Chromium with a fake microphone playing a 1 kHz tone.

Re-attach: the page is served to Chromium through a small TCP proxy (``KillableProxy``, a
fixture of this test: it forwards every byte of callgw's HTTPS port, so the page's ``wss://``
URL, which is its own origin, goes through it too). Mid-call the test kills the proxy (every
connection aborted, the port closed), waits, and listens again on the same port: the page
reconnects with its token and ``attach``es to the call. Judged where the user and the gateway
are: the status region keeps "connected" while a separate line says it is reconnecting; the
call timer goes on; the page hears the echoed tone again (its AnalyserNode); at sipp the tone
arrives as RTP before the drop, silence during it, the tone again after (dumpcap + tshark,
Goertzel per packet); a reload of the page does not hang up either (the reloaded page signs in
with the token its tab kept and takes the call back); one CDR, with the detach and attach
events. Back after callgw's grace period, the page stays signed in and its status says the call
is gone (``disconnected: network-error``, as the CDR says). Echo: calling ``[calls] echo_number`` from the page, the page hears the 440 Hz prompt,
then its own 1 kHz tone. Screenshots of every state are saved in tmp_path/screens and checked
to render.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.protocols.portforward import ProxyFactory

from callgw import passwords
from callgw.store.db import Database
from protocols.rtp import g711
from tests.callpath.callgw_env import events_of
from tests.peers import require_peer
from tests.sip.sipp import Sipp
from tests.web.browser import PEAK, BrowserThread, need_browser, tone_wav
from tests.web.test_browser_call import PASSWORD, hears_tone, listen, status_is

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "media"))
from test_media_calls import settled_cdr, start, tone_frames, within  # noqa: E402
from test_media_calls_wire import Capture, port_filter, rtp_packets  # noqa: E402

ECHO = "+4930999999"


@pytest.fixture(autouse=True)
def _peers_needed():
    need_browser()
    require_peer("sipp", "dumpcap", "tshark")


class TrackedProxyFactory(ProxyFactory):
    """ProxyFactory that remembers its connections (so the fixture can drop them)."""

    def __init__(self, host, port):
        super().__init__(host, port)
        self.protocols = []

    def buildProtocol(self, addr):
        proto = super().buildProtocol(addr)
        self.protocols.append(proto)
        return proto


class KillableProxy:
    """A fixture: a TCP proxy on 127.0.0.1 to callgw's HTTPS port that the test kills (every
    connection aborted, as a network change would, and the port closed) and starts again on
    the same port."""

    def __init__(self, port: int):
        self.target = port
        self.factory = TrackedProxyFactory("127.0.0.1", port)
        self.listening = reactor.listenTCP(0, self.factory, interface="127.0.0.1")
        self.port = self.listening.getHost().port

    def kill(self):
        for proto in self.factory.protocols:
            if proto.transport is not None:
                proto.transport.abortConnection()
            peer = getattr(proto, "peer", None)
            if peer is not None and peer.transport is not None:
                peer.transport.abortConnection()
        self.factory.protocols.clear()
        return self.listening.stopListening()

    def restart(self):
        self.listening = reactor.listenTCP(self.port, self.factory, interface="127.0.0.1")



def prepare(tmp_path, sipp_port=None):
    db = Database(str(tmp_path / "callgw.sqlite3"))
    db.migrate()
    db.add_tenant("acme", 1.0, timezone="Europe/Berlin", country="49")
    db.add_user("alice", passwords.hash_password(PASSWORD, n=1024), 1.0, tenant="acme",
                number="+4930100000")
    if sipp_port is not None:
        db.add_gateway("gw1", "sip", "127.0.0.1", sipp_port, ["+49"], 1.0)
    db.close()


def sign_in_and_call(page, url, number):
    page.goto(url)
    page.get_by_role("textbox", name="User name").fill("alice")
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("textbox", name="Number").fill(number)
    page.get_by_role("button", name="Call", exact=True).click()


def seconds_on_timer(page) -> int:
    minutes, _, seconds = page.locator("#timer").text_content().rpartition(":")
    return int(minutes or 0) * 60 + int(seconds)


def connection_line(page) -> str:
    line = page.locator("#connection")
    return line.text_content() if line.is_visible() else ""


def sleep(seconds):
    from twisted.internet import task
    return task.deferLater(reactor, seconds, lambda: None)


@pytest_twisted.inlineCallbacks
def test_the_page_reconnects_and_takes_its_call_back(tmp_path):
    mic = tone_wav(tmp_path / "tone.wav", hz=1000, seconds=120)
    sipp = Sipp("uas_answer.xml", tmp_path, timeout=120, extra=["-rtp_echo"]).start()
    prepare(tmp_path, sipp.port)
    gw = yield start(tmp_path, web=True)
    proxy = KillableProxy(gw.client.address("https")[1])
    capture = Capture(tmp_path / "continuity.pcapng", port_filter(gw, sipp), seconds=120)
    browser = BrowserThread(mic=mic)
    screens = tmp_path / "screens"
    marks: dict[str, float] = {}
    try:
        yield capture.start()
        yield browser.start()

        def call_up():
            page = browser.page
            sign_in_and_call(page, f"https://127.0.0.1:{proxy.port}/", "+4930123456")
            status_is(page, "connected")
            marks["connected"] = time.time()
            heard = listen(page, 2.5)
            marks["heard"] = time.time()
            browser.screenshot(screens, "01-connected")
            return heard, seconds_on_timer(page)

        heard_before, timer_before = yield browser.run(call_up)
        marks["drop"] = time.time()
        yield proxy.kill()                                  # the network goes away

        def while_down():
            page = browser.page
            page.wait_for_function("() => document.querySelector('#connection').textContent"
                                   ".startsWith('Connection lost: reconnecting')")
            page.wait_for_timeout(2500)
            seen = (page.get_by_role("status").text_content(), connection_line(page),
                    page.get_by_text("Quality:").text_content())
            browser.screenshot(screens, "02-reconnecting")
            return seen

        status_down, line_down, quality_down = yield browser.run(while_down)
        marks["back"] = time.time()
        proxy.restart()                                     # and comes back

        def call_back():
            page = browser.page
            page.wait_for_function("() => document.querySelector('#connection').hidden",
                                   timeout=20000)
            status_is(page, "connected")
            marks["reattached"] = time.time()
            heard = listen(page, 2.5)
            marks["heard-again"] = time.time()
            timer = seconds_on_timer(page)
            browser.screenshot(screens, "03-reattached")
            return heard, timer

        heard_after, timer_after = yield browser.run(call_back)

        def reload_and_hang_up():
            page = browser.page
            page.reload()
            marks["reloaded"] = time.time()
            page.get_by_role("button", name="Hang up").wait_for()
            status_is(page, "connected")
            page.wait_for_function("() => document.querySelector('#connection').hidden")
            marks["after-reload"] = time.time()
            heard = listen(page, 2.5)
            marks["heard-after-reload"] = time.time()
            timer = seconds_on_timer(page)
            browser.screenshot(screens, "04-after-reload")
            page.get_by_role("button", name="Hang up").click()
            status_is(page, "disconnected: normal — call ended")
            browser.screenshot(screens, "05-hung-up")
            return heard, timer

        heard_reload, timer_reload = yield browser.run(reload_and_hang_up)

        assert hears_tone(heard_before), heard_before
        assert status_down == "connected", status_down       # the state word stays
        assert line_down.startswith("Connection lost: reconnecting"), line_down
        assert quality_down == "Quality: no connection (reconnecting)", quality_down
        assert hears_tone(heard_after[4:]), heard_after       # the echo, after the re-attach
        outage = marks["back"] - marks["drop"]
        assert timer_after >= timer_before + outage - 1, (timer_before, timer_after, outage)
        assert timer_reload >= timer_after, (timer_after, timer_reload)
        assert (yield within(sipp.wait(reactor), 30)) == 0, sipp.log()   # one call, one BYE
        yield capture.stop()

        rows = yield rtp_packets(capture.path, "frame.time_epoch", "rtp.payload")
        toward = [r for r in rows if r[1] == sipp.media_port and r[2] == 0]

        def tone_share(start, end):
            voice = [r for r in toward if start <= float(r[3]) <= end]
            hits = sum(tone_frames(g711.decode_samples("PCMU", bytes.fromhex(
                r[4].replace(":", ""))))[0] for r in voice)
            return hits, len(voice)

        before = tone_share(marks["connected"] + 0.5, marks["heard"])
        during = tone_share(marks["drop"] + 0.5, marks["back"] - 0.1)
        after = tone_share(marks["reattached"] + 0.5, marks["heard-again"])
        reloaded = tone_share(marks["after-reload"] + 0.5, marks["heard-after-reload"])
        print(f"gateway leg, 1 kHz packets: before the drop {before}, while the page was away "
              f"{during}, after the re-attach {after}, after the reload {reloaded}")
        assert hears_tone(heard_reload[4:]), heard_reload     # and after the reload
        assert before[1] >= 80 and before[0] >= 0.9 * before[1]
        assert during[1] >= 50 and during[0] == 0      # callgw sent silence meanwhile
        assert after[1] >= 80 and after[0] >= 0.9 * after[1]
        assert reloaded[1] >= 80 and reloaded[0] >= 0.9 * reloaded[1]

        cdrs = yield settled_cdr(gw, "alice")
        assert len(cdrs) == 1, cdrs                       # one call all along
        cdr = cdrs[0]
        assert cdr["cause"] == 16 and cdr["answered"], cdr
        kinds = yield events_of(gw, cdr["call_id"])
        assert kinds.count("client-detached") == 2 and kinds.count("client-attached") == 2, kinds
        # Chromium logs each refused reconnect attempt (the proxy was down): nothing else
        errors = [e for e in browser.errors if "net::ERR_CONNECTION_REFUSED" not in e]
        assert not errors, errors
    finally:
        yield capture.stop()
        yield browser.stop()
        if proxy.listening.connected:
            yield proxy.listening.stopListening()
        yield gw.stopService()
        sipp.stop()


@pytest_twisted.inlineCallbacks
def test_back_after_the_grace_period_the_call_is_gone_and_the_page_says_so(tmp_path):
    """callgw's grace is 2 s here, the network is away for longer: the page signs in again
    (it stays signed in), its attach is answered with ``disconnected`` and the status says
    so; the CDR ends with network-error."""
    mic = tone_wav(tmp_path / "tone.wav", hz=1000, seconds=60)
    sipp = Sipp("uas_answer.xml", tmp_path, timeout=60, extra=["-rtp_echo"]).start()
    prepare(tmp_path, sipp.port)
    gw = yield start(tmp_path, web=True, client={"reattach_grace": 2.0})
    proxy = KillableProxy(gw.client.address("https")[1])
    browser = BrowserThread(mic=mic)
    screens = tmp_path / "screens"
    try:
        yield browser.start()

        def call_up():
            sign_in_and_call(browser.page, f"https://127.0.0.1:{proxy.port}/", "+4930123456")
            status_is(browser.page, "connected")

        yield browser.run(call_up)
        yield proxy.kill()
        yield sleep(4.0)
        proxy.restart()

        def gone():
            page = browser.page
            status_is(page, "disconnected: network-error — no call to attach", timeout=20000)
            page.get_by_role("textbox", name="Number").wait_for()     # signed in, can dial
            browser.screenshot(screens, "06-grace-over")
            return page.get_by_role("button", name="Sign out").count()

        assert (yield browser.run(gone)) == 1
        cdr = (yield settled_cdr(gw, "alice"))[0]
        assert cdr["cause"] == 38 and cdr["answered"], cdr           # network-error
    finally:
        yield browser.stop()
        if proxy.listening.connected:
            yield proxy.listening.stopListening()
        yield gw.stopService()
        sipp.stop()


@pytest_twisted.inlineCallbacks
def test_the_echo_number_from_the_page(tmp_path):
    mic = tone_wav(tmp_path / "tone.wav", hz=1000, seconds=60)
    prepare(tmp_path)                                   # no gateway at all
    gw = yield start(tmp_path, web=True, calls={"echo_number": ECHO})
    browser = BrowserThread(mic=mic)
    screens = tmp_path / "screens"
    host, port = gw.client.address("https")
    try:
        yield browser.start()

        def echo_call():
            page = browser.page
            sign_in_and_call(page, f"https://{host}:{port}/", ECHO)
            status_is(page, "connected")
            samples = []
            for _ in range(30):                         # 3 s, every 100 ms
                samples.append(page.evaluate(PEAK))
                if len(samples) == 4:
                    browser.screenshot(screens, "10-echo-prompt")
                page.wait_for_timeout(100)
            browser.screenshot(screens, "11-echo-tone")
            page.get_by_role("button", name="Hang up").click()
            status_is(page, "disconnected: normal — call ended")
            return samples

        samples = yield browser.run(echo_call)
        loud = [(round(s["speaker"]["hz"]), s["speaker"]["db"] > -70) for s in samples if s]
        print(f"the page's speaker, every 100 ms: {loud}")
        prompt = [i for i, (hz, ok) in enumerate(loud) if ok and abs(hz - 440) < 30]
        tone = [i for i, (hz, ok) in enumerate(loud) if ok and abs(hz - 1000) < 40]
        assert len(prompt) >= 2, loud                   # 0.6 s of 440 Hz first
        assert len(tone) >= 15, loud                    # then the caller's own tone
        assert max(prompt) < sorted(tone)[len(tone) // 2], loud
        cdr = (yield settled_cdr(gw, "alice"))[0]
        assert cdr["gateway"] == "echo" and cdr["target"] == ECHO and cdr["answered"]
        assert not browser.errors, browser.errors
    finally:
        yield browser.stop()
        yield gw.stopService()
