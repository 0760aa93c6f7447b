"""The operator dashboard at /admin/ in headless Chromium, against a running callgw with sipp as
its SIP gateway (tests/sip/scenarios/uas_answer_options.xml: it answers health probes while it
runs, rings, answers, echoes RTP and waits for a BYE).

Driven only by accessible names: sign in as an admin ("User name", "Password", "Sign in");
``callgw-dial`` (a subprocess) places a call to sipp and it shows in the table "Active calls"
over the live stream without a reload, with its state, media mode and quality; "Details" shows
the ladder with the client protocol's and SIP's messages (INVITE, 180, 200, ACK) and the routing;
"End call" and its confirmation release both legs (sipp gets the BYE, the client its release,
the row goes and the ladder then ends with BYE and its 200); "Gateways" reads "up" while sipp
runs and "down" once it is stopped; a refused attempt shows with its reason; the call records
filtered by target prefix, and their CSV export. The admin API answers 401 without credentials.
Screenshots of each view are saved in tmp_path/screens and checked to render.
"""
from __future__ import annotations

import csv
import io
import ssl
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import reactor, threads

from tests.callpath.callgw_env import PASSWORD, prepare_db, sleep, within
from tests.sip.sipp import Sipp
from tests.web.admins import ADMIN, ADMIN_PASSWORD, add_admin
from tests.web.browser import BrowserThread, need_browser

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "media"))
from test_media_calls import dial, start, url  # noqa: E402

pytestmark = pytest.mark.peers("sipp", "chromium")


def status_of(base, path) -> int:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE           # callgw's self-signed test certificate
    try:
        with urllib.request.urlopen(base + path, context=context, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def gateway_status(page, name):
    return page.get_by_role("table", name="Gateways").get_by_role("row").filter(
        has_text=name).get_by_role("cell").nth(3)


@pytest_twisted.inlineCallbacks
def test_the_dashboard_watches_details_and_ends_a_call_to_sipp(tmp_path):
    need_browser()
    sipp = Sipp("uas_answer_options.xml", tmp_path, calls=1000, timeout=120,
                extra=["-rtp_echo"]).start()
    try:
        prepare_db(tmp_path, gateways=[("gw1", sipp.port, ["+49"], {
            "probe_interval": 1.0, "down_after": 2, "up_after": 1})])
        add_admin(tmp_path / "callgw.sqlite3")
        gw = yield start(tmp_path, web=True, calls={"health_interval": 1.0})
    except BaseException:
        sipp.stop()
        raise
    host, port = gw.client.address("https")
    base = f"https://{host}:{port}"
    browser = BrowserThread(grant_mic=False)
    screens = tmp_path / "screens"
    call = None
    failed = []                     # (status, path) of every answer >= 400 the page got
    try:
        for path in ("/api/calls", "/api/calls/stream", "/api/cdrs?format=csv", "/api/refused",
                     "/api/gateways"):
            assert (yield threads.deferToThread(status_of, base, path)) == 401, path
        yield browser.start()

        def sign_in():
            page = browser.page
            page.set_viewport_size({"width": 1280, "height": 900})
            page.on("response", lambda r: r.status >= 400 and failed.append(
                (r.status, r.url.replace(base, ""))))
            page.goto(f"{base}/admin/")
            page.get_by_role("textbox", name="User name").fill(ADMIN)
            page.get_by_role("textbox", name="Password").fill(ADMIN_PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.get_by_role("table", name="Active calls").wait_for()
            page.wait_for_function(
                "() => [...document.querySelectorAll('tr[data-gateway=gw1] td')]"
                "[3]?.textContent === 'up'", timeout=15000)
            browser.screenshot(screens, "01-signed-in")
        yield browser.run(sign_in)

        call = dial("--server", url(gw, "tcp"), "--user", "alice", "--duration", "60",
                    "+4930123456", password=PASSWORD, timeout=90)

        def watch_and_detail():
            page = browser.page
            calls = page.get_by_role("table", name="Active calls")
            row = calls.get_by_role("row").filter(has_text="alice")
            row.wait_for(timeout=15000)
            page.wait_for_function(
                "() => [...document.querySelectorAll('tr[data-call] td')]"
                ".some(td => td.textContent === 'active')", timeout=15000)
            cells = [c.text_content() for c in row.get_by_role("cell").all()]
            duration_before = cells[5]
            page.wait_for_timeout(2200)                 # the duration ticks without a reload
            cells_after = [c.text_content() for c in row.get_by_role("cell").all()]
            browser.screenshot(screens, "02-active-call")

            row.get_by_role("link", name="Details").click()
            ladder = page.get_by_role("list", name="Ladder diagram")
            ladder.wait_for()
            page.wait_for_function(
                "() => document.querySelector('[aria-label=\"Ladder diagram\"]')"
                ".textContent.includes('ACK')", timeout=10000)
            before_end = ladder.text_content()
            routing = page.get_by_role("list", name="Routing decision").text_content()
            browser.screenshot(screens, "03-details-live")

            row.get_by_role("button", name="End call").click()
            dialog = page.get_by_role("dialog", name="End this call?")
            dialog.wait_for()
            question = dialog.text_content()
            browser.screenshot(screens, "04-confirm-end")
            dialog.get_by_role("button", name="Yes, end the call").click()
            row.wait_for(state="detached", timeout=15000)
            page.wait_for_function(
                "() => document.querySelector('[aria-label=\"Ladder diagram\"]')"
                ".textContent.includes('BYE')", timeout=15000)
            after_end = ladder.text_content()
            browser.screenshot(screens, "05-details-ended")
            return cells, duration_before, cells_after, before_end, routing, question, after_end

        cells, duration_before, cells_after, before_end, routing, question, after_end = \
            yield browser.run(watch_and_detail)
        assert cells[:5] == ["alice", "+4930123456", "gw1", f"{gw.callpath.servers[0].name}",
                             "active"], cells
        assert cells[6] == "relay"
        assert cells_after[5] != duration_before, (duration_before, cells_after)
        loss, jitter, mos = cells_after[7:10]
        assert loss.endswith(" %") and jitter.endswith(" ms") and float(mos) > 3.5, cells_after
        for message in ("INVITE", "180 Ringing", "200 OK", "ACK"):
            assert message in before_end, before_end
        assert "client" in before_end or "CALL" in before_end.upper()
        assert "candidates in order: gw1" in routing, routing
        assert "alice" in question and "+4930123456" in question
        assert "BYE" in after_end
        exit_code, out = yield within(call, 30)
        assert "ended by an operator" in out or "16" in out, out
        assert "BYE sip:" in (tmp_path / "sipp_messages.log").read_text(errors="replace")

        code, out = yield dial("--server", url(gw, "tcp"), "--user", "alice", "+19005550100",
                               password=PASSWORD)
        assert code != 0

        def records_and_refused():
            page = browser.page
            refused = page.get_by_role("table", name="Refused attempts")
            refused_row = refused.get_by_role("row").filter(has_text="+19005550100")
            refused_row.wait_for(timeout=15000)
            refused_text = refused_row.text_content()
            page.get_by_role("textbox", name="Target prefix").fill("+4930")
            page.get_by_role("textbox", name="User", exact=True).fill("alice")
            page.get_by_role("button", name="Search").click()
            records = page.get_by_role("table", name="Call records")
            record = records.get_by_role("row").filter(has_text="+4930123456")
            record.wait_for()
            record_text = record.text_content()
            browser.screenshot(screens, "06-records-refused")
            with page.expect_download() as info:
                page.get_by_role("link", name="Export CSV").click()
            exported = Path(info.value.path()).read_text("utf-8")
            return refused_text, record_text, exported

        refused_text, record_text, exported = yield browser.run(records_and_refused)
        assert "blocked" in refused_text and "+1900" in refused_text, refused_text
        assert "16 ended by an operator" in record_text, record_text
        rows = list(csv.DictReader(io.StringIO(exported)))
        assert [(r["username"], r["target"], r["cause"]) for r in rows] == [
            ("alice", "+4930123456", "16")], exported

        sipp.stop()

        def gateway_down():
            page = browser.page
            page.wait_for_function(
                "() => [...document.querySelectorAll('tr[data-gateway=gw1] td')]"
                "[3]?.textContent === 'down'", timeout=20000)
            status = gateway_status(page, "gw1").text_content()
            browser.screenshot(screens, "07-gateway-down")
            return status, browser.errors
        status, errors = yield browser.run(gateway_down)
        assert status == "down"
        assert failed == [(401, "/admin/session")], failed  # asked once before signing in
        # load failures are judged by ``failed`` (the console also has the favicon's 404)
        assert [e for e in errors if not e.startswith("Failed to load resource")] == [], errors
    finally:
        yield browser.stop()
        yield gw.stopService()
        sipp.stop()
        if call is not None and not call.called:
            call.cancel()
            call.addErrback(lambda f: None)
        yield sleep(0)
