"""A call from the web page, end to end: headless Chromium (fake microphone playing a 1 kHz
tone) -> callgw over wss:// (relayed media) -> sipp as the PSTN gateway, echoing RTP and taking
hold/resume re-INVITEs (tests/sip/scenarios/uas_hold.xml, with telephone-event).

Driven only by the page's accessible names (issue 12): sign in (the tenant's branding shows),
add a contact, click "Call <Name>", then DTMF from the keypad, Mute, Hold/resume, Hang up, a
refused number, the history. Judged where the user and the gateway are:

- dumpcap captures the gateway leg; tshark decodes it: the tone arrives at sipp as PCMU RTP
  (Goertzel over every 20 ms packet), mute leaves silence there, the keypad's digits arrive as
  RFC 4733 events, and sipp finishes its scenario (so both re-INVITEs and the BYE came);
- in the page, its AnalyserNode hears the tone come back (dominant frequency 1 kHz);
- the status region reads trying/ringing/connected/disconnected as the issue spells them;
- the history lists the call; the CDR has the relay's media figures.

Screenshots of every state are saved in tmp_path/screens and checked to render.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import reactor

from callgw import passwords
from callgw.store.db import Database
from protocols.rtp import g711
from tests.sip.sipp import Sipp
from tests.peers import require_peer
from tests.web.browser import PEAK, BrowserThread, need_browser, tone_wav

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "media"))
from test_media_calls import settled_cdr, start, tone_frames, within  # noqa: E402
from test_media_calls_wire import Capture, port_filter, rtp_packets  # noqa: E402

PASSWORD = "correct horse"
LOGO = ("data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 40 40'%3E"
        "%3Ccircle cx='20' cy='20' r='18' fill='%23f59e0b'/%3E%3C/svg%3E")
BRANDING = {"display_name": "ACME Phone", "logo": LOGO, "primary_color": "#0a7d32",
            "accent_color": "#f59e0b", "greeting": "Hello from ACME"}


@pytest.fixture(autouse=True)
def _peers_needed():
    need_browser()
    require_peer("sipp", "dumpcap", "tshark")


def prepare(tmp_path, sipp_port):
    db = Database(str(tmp_path / "callgw.sqlite3"))
    db.migrate()
    db.add_tenant("acme", 1.0, timezone="Europe/Berlin", country="49", branding=BRANDING)
    db.add_user("alice", passwords.hash_password(PASSWORD, n=1024), 1.0, tenant="acme",
                number="+4930100000")
    db.add_gateway("gw1", "sip", "127.0.0.1", sipp_port, ["+49"], 1.0)
    db.close()


def status_is(page, text, timeout=15000):
    page.wait_for_function("t => document.querySelector('[role=status]').textContent === t",
                           arg=text, timeout=timeout)


def listen(page, seconds, every=0.25):
    """The page's analysers, sampled for ``seconds``."""
    out = []
    for _ in range(int(seconds / every)):
        page.wait_for_timeout(every * 1000)
        out.append(page.evaluate(PEAK))
    return out


def hears_tone(samples, side="speaker"):
    """Most samples have 1 kHz (one FFT bin is 23 Hz at 48 kHz) loud above the floor."""
    good = [s for s in samples if s and abs(s[side]["hz"] - 1000) < 40 and s[side]["db"] > -70]
    return len(good) >= 0.8 * len(samples)


@pytest_twisted.inlineCallbacks
def test_a_call_from_the_page_through_callgw_to_sipp(tmp_path):
    mic = tone_wav(tmp_path / "tone.wav", hz=1000, seconds=120)
    sipp = Sipp("uas_hold.xml", tmp_path, timeout=120, extra=["-rtp_echo"]).start()
    prepare(tmp_path, sipp.port)
    gw = yield start(tmp_path, web=True)
    capture = Capture(tmp_path / "page-call.pcapng", port_filter(gw, sipp), seconds=120)
    browser = BrowserThread(mic=mic)
    screens = tmp_path / "screens"
    host, port = gw.client.address("https")
    marks: dict[str, float] = {}
    try:
        yield capture.start()
        yield browser.start()

        def call_flow():
            page = browser.page
            page.goto(f"https://{host}:{port}/")
            page.get_by_role("textbox", name="User name").fill("alice")
            page.get_by_role("textbox", name="Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.get_by_role("button", name="Add contact").wait_for()
            assert page.get_by_text("ACME Phone", exact=True).is_visible()
            assert page.get_by_text("Hello from ACME").is_visible()
            assert page.get_by_role("img", name="ACME Phone logo").is_visible()
            header = page.locator("header").evaluate("e => getComputedStyle(e).backgroundColor")
            assert header == "rgb(10, 125, 50)", header
            assert page.title() == "ACME Phone"
            browser.screenshot(screens, "01-signed-in-branded")

            page.get_by_role("button", name="Add contact").click()
            dialog = page.get_by_role("dialog", name="Add contact")
            dialog.get_by_role("textbox", name="Name").fill("Echo Desk")
            dialog.get_by_role("textbox", name="Number").fill("+4930123456")
            assert page.get_by_role("textbox", name="Number").count() == 1
            browser.screenshot(screens, "02-add-contact")
            dialog.get_by_role("button", name="Save").click()
            call = page.get_by_role("button", name="Call Echo Desk", exact=True)
            call.wait_for()
            browser.screenshot(screens, "03-contact-saved")

            call.click()
            status_is(page, "connected")
            marks["connected"] = time.time()
            assert page.get_by_role("status").count() == 1
            assert page.get_by_role("textbox", name="Number").count() == 0
            heard = listen(page, 3.0)
            marks["heard"] = time.time()
            quality = page.get_by_text("Quality:").text_content()
            browser.screenshot(screens, "04-connected")

            for key in ("1", "5", "9", "#"):
                page.get_by_role("button", name=key, exact=True).click()
                page.wait_for_timeout(400)

            mute = page.get_by_role("button", name="Mute", exact=True)
            marks["mute"] = time.time()
            mute.click()
            assert mute.get_attribute("aria-pressed") == "true"
            page.wait_for_timeout(2500)
            browser.screenshot(screens, "05-muted")
            marks["unmute"] = time.time()
            mute.click()
            assert mute.get_attribute("aria-pressed") == "false"
            page.wait_for_timeout(2000)

            hold = page.get_by_role("button", name="Hold", exact=True)
            marks["hold"] = time.time()
            hold.click()
            assert hold.get_attribute("aria-pressed") == "true"
            page.wait_for_timeout(1500)
            held_status = page.get_by_role("status").text_content()
            browser.screenshot(screens, "06-held")
            hold.click()
            marks["resume"] = time.time()
            assert hold.get_attribute("aria-pressed") == "false"
            after_resume = listen(page, 2.5)

            page.get_by_role("button", name="Hang up").click()
            status_is(page, "disconnected: normal — call ended")
            marks["hangup"] = time.time()
            browser.screenshot(screens, "07-hung-up")

            number = page.get_by_role("textbox", name="Number")
            number.fill("+19005550100")
            page.get_by_role("button", name="Call", exact=True).click()
            page.wait_for_function("() => document.querySelector('[role=status]').textContent"
                                   ".startsWith('disconnected: unauthorized')")
            refused = page.get_by_role("status").text_content()
            browser.screenshot(screens, "08-refused")

            row = page.get_by_role("row").filter(has_text="+49 301 234 56")
            row.wait_for(timeout=15000)
            history = row.text_content()
            browser.screenshot(screens, "09-history")
            return heard, quality, held_status, after_resume, refused, history

        heard, quality, held_status, after_resume, refused, history = \
            yield browser.run(call_flow)
        assert hears_tone(heard), heard                   # the echo, in the page
        assert hears_tone(after_resume[4:]), after_resume  # and again after the resume
        assert quality.startswith("Quality: good"), quality
        assert held_status == "connected"
        assert refused == ("disconnected: unauthorized — destination blocked: +1900 "
                           "(NANP premium rate)"), refused
        assert "answered" in history
        assert (yield within(sipp.wait(reactor), 30)) == 0, sipp.log()  # hold, resume, BYE
        yield capture.stop()

        rows = yield rtp_packets(capture.path, "frame.time_epoch", "rtp.payload",
                                 "rtp.timestamp", "rtpevent.event_id")
        toward = [r for r in rows if r[1] == sipp.media_port]

        def tone_share(start, end):
            voice = [r for r in toward if r[2] == 0 and start <= float(r[3]) <= end]
            hits = sum(tone_frames(g711.decode_samples("PCMU", bytes.fromhex(
                r[4].replace(":", ""))))[0] for r in voice)
            return hits, len(voice)

        hits, total = tone_share(marks["connected"] + 0.5, marks["heard"])
        print(f"gateway leg, talking: {hits}/{total} packets carry the 1 kHz tone")
        assert total >= 100 and hits >= 0.9 * total
        hits, total = tone_share(marks["mute"] + 0.5, marks["unmute"] - 0.1)
        print(f"gateway leg, muted: {hits}/{total} packets carry the tone")
        assert total >= 50 and hits == 0                 # silence flows, no tone
        hits, total = tone_share(marks["unmute"] + 0.5, marks["hold"] - 0.1)
        assert total >= 40 and hits >= 0.9 * total
        events: dict[str, str] = {}
        for r in toward:
            if r[2] == 101 and r[6]:
                events.setdefault(r[5], r[6])
        digits = "".join("0123456789*#ABCD"[int(e)] for e in events.values())
        print(f"gateway leg: RFC 4733 digits {digits!r}")
        assert digits == "159#"

        cdr = (yield settled_cdr(gw, "alice"))[0]
        assert cdr["target"] == "+4930123456" and cdr["cause"] == 16
        assert cdr["stats"]["media"]["client_to_gateway"]["packets"] > 300
        assert not browser.errors, browser.errors
        sent = [json.loads(x)["cmd"] for x in browser.sent]
        assert {"book-put", "book-list", "history", "call", "dtmf", "hold", "resume",
                "hangup"} <= set(sent)
    finally:
        yield capture.stop()
        yield browser.stop()
        yield gw.stopService()
        sipp.stop()
