"""The dashboard's counters over time (callgw/web/static/admin/charts.js over
``GET /api/stats/calls``, callgw/web/dashboard.py) and its gateway buttons (Drain / Enable, over
callgw/web/gateways_api.py) in headless Chromium, against a running callgw whose only
destination is its echo number (``[calls] echo_number``: no gateway peer needed; the one SIP
gateway configured is never probed or called).

``callgw-dial`` (a subprocess) places two calls to the echo number and one the director refuses
(a blocked +1900 number); the admin signs in ("User name", "Password", "Sign in") and the
section "Counters" draws, from the store, calls per minute by outcome (two answered and one
refused bars, also said in the chart's caption), the answer-seizure ratio (100 %: both calls that
reached a "gateway" were answered) and the set-up latency (a point for the minute of the calls).
The same figures over the API: 401 without credentials, 400 for a window over a day. A
screenshot of the charts is saved and checked to render. "Drain gateway gw9" makes its status
read "draining" (and the API says it is disabled); "Enable gateway gw9" takes it back.
"""
from __future__ import annotations

import json
import ssl
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import threads

from tests.callpath.callgw_env import PASSWORD, prepare_db, sleep
from tests.web.admins import ADMIN, ADMIN_PASSWORD, add_admin, basic
from tests.web.browser import BrowserThread, need_browser

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "media"))
from test_media_calls import dial, start, url  # noqa: E402

pytestmark = pytest.mark.peers("chromium")
ECHO = "+4930999999"
CHART_SUM = """name => [...document.querySelectorAll(
    `figure[aria-label="Calls per minute by outcome"] rect[data-outcome="${name}"]`)]
    .reduce((n, r) => n + Number(r.dataset.count), 0)"""


def fetch(base, path, auth=True):
    """(status, body) of a GET over callgw's self-signed HTTPS, without raising on 4xx."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE           # callgw's self-signed test certificate
    req = urllib.request.Request(base + path)
    if auth:
        req.add_header("Authorization", basic())
    try:
        with urllib.request.urlopen(req, context=context, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


@pytest_twisted.inlineCallbacks
def test_the_counters_chart_the_calls_just_made(tmp_path):
    need_browser()
    prepare_db(tmp_path, gateways=[("gw9", 9, ["+33"], {})])
    add_admin(tmp_path / "callgw.sqlite3")
    gw = yield start(tmp_path, web=True, calls={"echo_number": ECHO})
    host, port = gw.client.address("https")
    base = f"https://{host}:{port}"
    browser = BrowserThread(grant_mic=False)
    try:
        code, _ = yield threads.deferToThread(fetch, base, "/api/stats/calls", False)
        assert code == 401
        for _ in range(2):
            code, out = yield dial("--server", url(gw, "tcp"), "--user", "alice",
                                   "--duration", "1", ECHO, password=PASSWORD, timeout=60)
            assert code == 0, out
        code, out = yield dial("--server", url(gw, "tcp"), "--user", "alice", "+19005550100",
                               password=PASSWORD)
        assert code != 0, out

        minutes = []
        for _ in range(50):                      # the call logger writes every 0.2 s
            code, body = yield threads.deferToThread(fetch, base, "/api/stats/calls")
            assert code == 200, body
            minutes = json.loads(body)["minutes"]
            if sum(m["calls"] for m in minutes) == 3:
                break
            yield sleep(0.2)
        assert len(minutes) in (61, 62)          # the last hour, minute by minute
        assert sum(m["outcomes"]["answered"] for m in minutes) == 2, minutes
        assert sum(m["outcomes"]["refused"] for m in minutes) == 1, minutes
        assert sum(m["seized"] for m in minutes) == 2
        assert all(m["asr"] in (None, 1.0) for m in minutes)
        assert any(m["setup_avg"] is not None for m in minutes)
        code, _ = yield threads.deferToThread(fetch, base, "/api/stats/calls?since=0")
        assert code == 400
        code, _ = yield threads.deferToThread(fetch, base, "/api/stats/calls?until=soon")
        assert code == 400

        yield browser.start()

        def charts():
            page = browser.page
            page.set_viewport_size({"width": 1280, "height": 900})
            page.goto(f"{base}/admin/")
            page.get_by_role("textbox", name="User name").fill(ADMIN)
            page.get_by_role("textbox", name="Password").fill(ADMIN_PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            calls = page.get_by_role("figure", name="Calls per minute by outcome")
            calls.wait_for()
            page.wait_for_function(f"() => ({CHART_SUM})('answered') === 2", timeout=15000)
            figures = {name: page.get_by_role("figure", name=name).text_content()
                       for name in ("Calls per minute by outcome", "Answer-seizure ratio",
                                    "Set-up latency")}
            drawn = {"answered": page.evaluate(f"({CHART_SUM})('answered')"),
                     "refused": page.evaluate(f"({CHART_SUM})('refused')"),
                     "images": page.get_by_role("img").count(),
                     "asr points": page.evaluate(
                         "() => [...document.querySelectorAll('figure[aria-label=\"Answer-"
                         "seizure ratio\"] circle')].map(c => Number(c.dataset.value))"),
                     "latency points": page.locator(
                         'figure[aria-label="Set-up latency"] circle').count()}
            page.get_by_role("heading", name="Counters").scroll_into_view_if_needed()
            browser.screenshot(tmp_path / "screens", "counters")
            return figures, drawn, browser.errors

        figures, drawn, errors = yield browser.run(charts)

        def status(page):
            return page.evaluate("() => [...document.querySelectorAll("
                                 "'tr[data-gateway=gw9] td')][3]?.textContent")

        def drain():
            page = browser.page
            page.get_by_role("button", name="Drain gateway gw9").click()
            page.wait_for_function("() => [...document.querySelectorAll("
                                   "'tr[data-gateway=gw9] td')][3]?.textContent === 'draining'",
                                   timeout=15000)
            browser.screenshot(tmp_path / "screens", "gateway-draining")
            return status(page)
        assert (yield browser.run(drain)) == "draining"
        _, body = yield threads.deferToThread(fetch, base, "/api/gateways/gw9")
        assert json.loads(body)["enabled"] is False

        def enable():
            page = browser.page
            page.get_by_role("button", name="Enable gateway gw9").click()
            page.get_by_role("button", name="Drain gateway gw9").wait_for(timeout=15000)
            return status(page)
        assert (yield browser.run(enable)) == "unknown"
        _, body = yield threads.deferToThread(fetch, base, "/api/gateways/gw9")
        assert json.loads(body)["enabled"] is True
        errors = browser.errors
        assert drawn["answered"] == 2 and drawn["refused"] == 1, drawn
        assert drawn["images"] >= 3
        assert drawn["asr points"] and set(drawn["asr points"]) == {100}, drawn
        assert drawn["latency points"] >= 1, drawn
        assert "3 calls in" in figures["Calls per minute by outcome"], figures
        assert "2 answered, 1 refused" in figures["Calls per minute by outcome"], figures
        assert "100 % (2 answered of 2 seized)" in figures["Answer-seizure ratio"], figures
        assert "average" in figures["Set-up latency"], figures
        assert [e for e in errors if not e.startswith("Failed to load resource")] == [], errors
    finally:
        yield browser.stop()
        yield gw.stopService()
