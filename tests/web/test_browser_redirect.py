"""The call page follows ``redirect`` (docs/protocol.md, "Redirect"), in headless Chromium with
a fake microphone playing a 1 kHz tone: the page is served by a first callgw whose front end is
a fixture (tests/client/redirector.py) answering every login with ``redirect`` to a second
callgw's HTTPS port; the page reconnects its WebSocket there (same scheme and path, allowed by
the first site's Content-Security-Policy), logs in again with the key it derived once, calls
the echo number and hears it; a reload mid-call signs in with the token at the front end, which
now welcomes it and answers its ``attach`` with the redirect (the call is held at the second
gateway): the page follows and takes the call back there; hanging up ends it normally.
A signed-in page that the second gateway redirects (as a drained call server would) follows
with its token and calls from where it lands. The second gateway's CDRs are the judge that the
calls ran there."""
from __future__ import annotations

import json

import pytest
import pytest_twisted

from tests.callpath.callgw_env import settled_cdr
from tests.client.redirector import (ECHO, PASSWORD, WAIT, redirect_session, stop,
                                     two_gateways, until)
from tests.web.browser import PEAK, BrowserThread, need_browser, tone_wav
from tests.web.test_browser_call import status_is


@pytest.fixture(autouse=True)
def _peers_needed():
    need_browser()


def loud(samples, hz, tolerance):
    return [s for s in samples if s and abs(s["speaker"]["hz"] - hz) < tolerance
            and s["speaker"]["db"] > -70]


@pytest_twisted.inlineCallbacks
def test_the_page_follows_a_redirect_and_calls_on_the_second_gateway(tmp_path):
    mic = tone_wav(tmp_path / "tone.wav", hz=1000, seconds=60)
    front, gw2, fixture = yield two_gateways(tmp_path)
    front.web.allow_connect(*gw2.client.address("https"))
    browser = BrowserThread(mic=mic)
    host, port = front.client.address("https")
    target = "%s:%d" % fixture.targets["wss"]
    try:
        yield browser.start()

        def call_flow():
            page = browser.page
            page.goto(f"https://{host}:{port}/")
            page.get_by_role("textbox", name="User name").fill("alice")
            page.get_by_role("textbox", name="Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.get_by_role("textbox", name="Number").fill(ECHO)
            page.get_by_role("button", name="Call", exact=True).click()
            status_is(page, "connected", timeout=WAIT * 1000)
            before = []
            for _ in range(30):                          # 3 s, every 100 ms
                before.append(page.evaluate(PEAK))
                page.wait_for_timeout(100)
            url = page.evaluate("() => window.callgwPage.session.url")
            return before, url

        before, url = yield browser.run(call_flow)
        fixture.redirect_on("attach")

        def reload_and_hang_up():
            page = browser.page
            page.reload()
            page.get_by_role("button", name="Hang up").wait_for()
            status_is(page, "connected", timeout=WAIT * 1000)
            page.wait_for_function("() => document.querySelector('#connection').hidden",
                                   timeout=WAIT * 1000)
            after = []
            for _ in range(20):
                after.append(page.evaluate(PEAK))
                page.wait_for_timeout(100)
            moved = page.evaluate("() => window.callgwPage.session.url")
            page.get_by_role("button", name="Hang up").click()
            status_is(page, "disconnected: normal — call ended")
            return after, moved

        after, moved = yield browser.run(reload_and_hang_up)
        assert url == moved == f"wss://{target}/client/v1/ws"
        assert fixture.redirected == [("wss", "alice"), ("wss", "alice")]   # login, attach
        sent = [json.loads(f) for f in browser.sent]
        received = [json.loads(f) for f in browser.received]
        redirects = [m for m in received if m["cmd"] == "redirect"]
        assert len(redirects) == 2 and redirects[0]["text"] == "fixture: use gateway 2"
        proofs = [m for m in sent if m["cmd"] == "login" and "proof" in m]
        assert len(proofs) == 2                          # at the front end, then at gw2
        attaches = [m for m in sent if m["cmd"] == "attach"]
        assert len(attaches) == 2 and attaches[0] == attaches[1]    # at the front end, at gw2
        print(f"speaker before the reload: {len(loud(before, 440, 30))} prompt and "
              f"{len(loud(before, 1000, 40))} tone samples of {len(before)}; after: "
              f"{len(loud(after, 1000, 40))} tone samples of {len(after)}")
        assert loud(before, 440, 30) or loud(before, 1000, 40), before
        assert len(loud(after, 1000, 40)) >= 0.5 * len(after), after
        cdrs = yield settled_cdr(gw2, "alice", limit=WAIT)
        assert len(cdrs) == 1 and cdrs[0]["gateway"] == "echo" and cdrs[0]["answered"]
        assert (yield front.store.run("cdrs", 5, "alice")) == []
        assert not browser.errors, browser.errors
    finally:
        yield browser.stop()
        yield stop(gw2, front)


@pytest_twisted.inlineCallbacks
def test_a_signed_in_page_follows_a_redirect_and_carries_on(tmp_path):
    mic = tone_wav(tmp_path / "tone.wav", hz=1000, seconds=60)
    front, gw2, fixture = yield two_gateways(tmp_path)
    front.web.allow_connect(*gw2.client.address("https"))
    browser = BrowserThread(mic=mic)
    host, port = front.client.address("https")
    try:
        yield browser.start()

        def sign_in():
            page = browser.page
            page.goto(f"https://{host}:{port}/")
            page.get_by_role("textbox", name="User name").fill("alice")
            page.get_by_role("textbox", name="Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.get_by_role("textbox", name="Number").wait_for()

        yield browser.run(sign_in)
        redirect_session(gw2, "alice", host, port)        # back to the front end
        yield until(lambda: len(fixture.redirected) == 2)  # which sends it on to gw2

        def call():
            page = browser.page
            page.wait_for_function("() => { const s = window.callgwPage.session; "
                                   "return s && s.welcome && !s.moving && !s.closed; }",
                                   timeout=WAIT * 1000)
            page.get_by_role("textbox", name="Number").fill(ECHO)
            page.get_by_role("button", name="Call", exact=True).click()
            status_is(page, "connected", timeout=WAIT * 1000)
            page.get_by_role("button", name="Hang up").click()
            status_is(page, "disconnected: normal — call ended")

        yield browser.run(call)
        received = [json.loads(f) for f in browser.received]
        assert [m.get("text") for m in received if m["cmd"] == "redirect"] == [
            "fixture: use gateway 2", "draining", "fixture: use gateway 2"]
        sent = [json.loads(f) for f in browser.sent]
        assert [m for m in sent if m["cmd"] == "login" and "token" in m]    # the token's turn
        cdrs = yield settled_cdr(gw2, "alice", limit=WAIT)
        assert len(cdrs) == 1 and cdrs[0]["answered"]
        assert not browser.errors, browser.errors
    finally:
        yield browser.stop()
        yield stop(gw2, front)
