"""The call page through the real roles, in headless Chromium with a fake microphone: a front
end (``[cluster] role = "frontend"``) serves the page and a call server (``"callserver"``) on
the same database places the calls. The page signs in at the front end, is redirected to the
call server's web listener (the front end's Content-Security-Policy names it once the front
end's pool knows the call server), calls the echo number there and hangs up; the call
server's CDR is the judge that the call ran there."""
from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import defer

from tests.callpath.callgw_env import PASSWORD, prepare_db, sleep
from tests.cluster.nodes import ECHO, node
from tests.helpers import started
from tests.web.browser import BrowserThread, need_browser, tone_wav
from tests.web.test_browser_call import status_is

WAIT = 20
WEB_ONLY = {"udp": "off", "tcp": "off", "tls": "off"}     # the page: the web listener


@pytest.fixture(autouse=True)
def _peers_needed():
    need_browser()


@pytest_twisted.inlineCallbacks
def test_the_page_signs_in_at_the_front_end_and_calls_at_the_call_server(tmp_path):
    prepare_db(tmp_path)
    mic = tone_wav(tmp_path / "tone.wav", hz=1000, seconds=30)
    nodes = []
    browser = BrowserThread(mic=mic)
    try:
        cs = yield started(node(tmp_path, "cs-a", "callserver", client=WEB_ONLY))
        nodes.append(cs)
        fe = yield started(node(tmp_path, "fe", "frontend", client=WEB_ONLY))
        nodes.append(fe)
        pool = fe.child("cluster")
        for _ in range(100):
            if any(s.healthy for s in pool.nodes.values()):
                break
            yield sleep(0.1)
        host, port = fe.client.address("https")
        cs_port = cs.client.address("https")[1]
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
            url = page.evaluate("() => window.callgwPage.session.url")
            page.get_by_role("button", name="Hang up").click()
            status_is(page, "disconnected: normal — call ended")
            return url

        url = yield browser.run(call_flow)
        assert f":{cs_port}/" in url, url            # the page's socket went to the call server
        for _ in range(100):
            cdrs = yield cs.store.run("cdrs", 5, "alice")
            if cdrs:
                break
            yield sleep(0.1)
        assert len(cdrs) == 1 and cdrs[0]["call_server"].startswith("cs-a/")
        assert cdrs[0]["answered"] and cdrs[0]["cause"] == 16
    finally:
        yield browser.stop()
        for gw in reversed(nodes):
            yield defer.maybeDeferred(gw.stopService)
