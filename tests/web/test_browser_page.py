"""The call page in headless Chromium (Playwright), without a gateway: the page's own modules
checked against the Python side's vectors (the login proof of docs/protocol.md, G.711, media
frames, base64url), E.164 as typed, the jitter buffer; keyboard-only use in a phone-sized
window (sign in, add, edit and delete contacts, visible focus, no sideways scrolling); a denied
microphone places no call; the token is refreshed before it expires.

Everything is found by the accessible names of issue 12. Screenshots of each state are saved
under the test's tmp_path/screens and checked to render (tests/web/browser.py)."""
from __future__ import annotations

import json

import pytest
import pytest_twisted
from twisted.internet import defer

from callgw import passwords
from callgw.client.links import connect
from protocols.client import docgen
from protocols.client import messages as m
from protocols.client.framing import encode_media
from protocols.rtp import g711
from tests.frontend.gateway import cert_path
from tests.web.browser import BrowserThread, need_browser, tone_wav

PASSWORD = "correct horse"


@pytest.fixture(autouse=True)
def _browser_needed():
    need_browser()


@defer.inlineCallbacks
def start(tmp_path, **overrides):
    """callgw with its web site on (call path included, no gateway), user alice."""
    from twisted.internet import reactor

    from callgw.service import GatewayService
    from tests.helpers import make_config
    gw = GatewayService(make_config(tmp_path, **overrides), reactor)
    gw.callpath.health_interval = None
    gw.startService()
    yield gw.ready
    yield gw.store.run("ensure_default_tenant", 1.0)
    yield gw.store.run("add_user", "alice", passwords.hash_password(PASSWORD, n=1024), 1.0,
                       number="+4930100000")
    return gw


def page_url(gw):
    host, port = gw.client.address("https")
    return f"https://{host}:{port}/"


def sign_in(page, user="alice", password=PASSWORD):
    page.get_by_role("textbox", name="User name").fill(user)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


@pytest_twisted.inlineCallbacks
def test_page_modules_agree_with_the_python_side(tmp_path):
    gw = yield start(tmp_path)
    browser = BrowserThread()
    vector = docgen._vector()
    version = gw.web.page_files.version
    try:
        yield browser.start()

        def check():
            page = browser.page
            page.goto(page_url(gw))
            return page.evaluate(MODULE_CHECKS, {
                "base": f"/static/{version}/js/",
                "password": docgen.PASSWORD, "salt": list(docgen.SALT),
                "clientNonce": docgen.CLIENT_NONCE, "nonce": docgen.NONCE,
                "key": list(docgen.KEY),
            })
        got = yield browser.run(check)
        assert bytes(got["salted"]) == vector["salted"]
        assert bytes(got["auth"]) == vector["auth"]
        assert got["proof"] == m.b64e(vector["proof"])
        assert got["signature"] == m.b64e(vector["signature"])
        assert bytes(got["ulaw"]) == g711._ULAW_ENCODE and bytes(got["alaw"]) == g711._ALAW_ENCODE
        assert tuple(got["ulawDecoded"]) == g711.ULAW_LINEAR
        assert tuple(got["alawDecoded"]) == g711.ALAW_LINEAR
        assert bytes(got["media"]) == encode_media(docgen.MEDIA_EXAMPLE)
        assert got["b64"] == [m.b64e(bytes(range(n))) for n in range(8)]
        assert got["b64Refused"] == [True, True, True]
        assert got["formatted"] == [
            "+49 301 234 56", "+1 415 555 0100", "+44 207 946 0958", "+49 30", "+",
            "+33 123 456 789", "+358 912 345 67", "", "+49 301 234 567 8901"]
        assert got["jitter"] == {"order": list(range(20)), "lateDropped": 1, "concealed": 1,
                                 "grewTo": 4, "shrankTo": 2}
        assert got["quality"] == {"lost": 2, "expected": 50, "jitterMs": pytest.approx(0, abs=1)}
        assert not browser.errors, browser.errors
    finally:
        yield browser.stop()
        yield gw.stopService()


MODULE_CHECKS = """async (v) => {
  const scram = await import(v.base + "scram.js");
  const g711 = await import(v.base + "g711.js");
  const bytes = await import(v.base + "bytes.js");
  const proto = await import(v.base + "protocol.js");
  const e164 = await import(v.base + "e164.js");
  const { JitterBuffer, ReceiveQuality } = await import(v.base + "jitter.js");
  const salt = Uint8Array.from(v.salt);
  const salted = await scram.saltedPassword(v.password, salt, 16384, 8, 1);   // in the worker
  const auth = scram.authMessage("alice", v.clientNonce, v.nonce, salt, 16384, 8, 1);
  const all = Int16Array.from({ length: 65536 }, (_, i) => i);
  const codes = Uint8Array.from({ length: 256 }, (_, i) => i);
  const refused = ["AB=", "A", "AB+/"].map((t) => { try { bytes.b64d(t); return false; } catch { return true; } });
  // jitter buffer: in order, a reordered pair, a late frame, a lost one, running dry
  const jb = new JitterBuffer({ startDelay: 3, minDelay: 2, maxDelay: 6, shrinkAfter: 5 });
  const f = (n) => Float32Array.from({ length: 160 }, () => n / 100);
  const order = [];
  const take = () => { const x = jb.pull(); if (x) order.push(Math.round(x[0] * 100)); };
  for (const s of [0, 1, 2, 4, 3]) jb.push(s, f(s));
  for (let i = 0; i < 5; i++) take();
  jb.push(2, f(2));                         // late: already played
  for (let s = 5; s < 20; s++) { jb.push(s, f(s)); if (s !== 12) take(); }
  take(); take(); take(); take();
  const lateDropped = jb.stats.late;
  jb.push(20, f(20)); jb.push(22, f(22)); jb.push(23, f(23));
  take(); take(); take(); take();           // 21 is missing: concealed
  const concealed = jb.stats.concealed;
  take(); take();                           // dry: the delay grows
  const grewTo = jb.delay;
  for (let s = 24; s < 60; s++) { jb.push(s, f(s)); if (s % 4) take(); }   // a standing queue
  const shrankTo = jb.delay;
  const q = new ReceiveQuality();
  for (let s = 0; s < 50; s++) if (s !== 10 && s !== 11) q.frame(s, s * 160, 1000 + s * 20);
  const snap = q.snapshot();
  return {
    salted: [...salted], auth: [...auth],
    proof: bytes.b64e(scram.clientProof(salted, auth)),
    signature: bytes.b64e(scram.serverSignature(salted, auth)),
    ulaw: [...g711.encode("PCMU", all)], alaw: [...g711.encode("PCMA", all)],
    ulawDecoded: [...g711.decode("PCMU", codes)], alawDecoded: [...g711.decode("PCMA", codes)],
    media: [...proto.encodeMedia(Uint8Array.from(v.key), 8, 1234, 160000, new Uint8Array(8).fill(0xD5))],
    b64: [0, 1, 2, 3, 4, 5, 6, 7].map((n) => bytes.b64e(Uint8Array.from({ length: n }, (_, i) => i))),
    b64Refused: refused,
    formatted: ["+4930123456", "+14155550100", "00442079460958", "4930", "+", "+33 1 23 45 67 89",
                "+358912345 67", "abc", "+49 3012 3456 7890 12345"].map((t) => e164.format(e164.normalize(t))),
    jitter: { order: order.slice(0, 20), lateDropped, concealed: concealed - 0, grewTo, shrankTo },
    quality: { lost: snap.lost, expected: snap.expected, jitterMs: snap.jitterMs },
  };
}"""


@pytest_twisted.inlineCallbacks
def test_keyboard_only_in_a_phone_sized_window(tmp_path):
    """Sign in (a wrong password first), add a contact, edit it and delete it with the keyboard
    alone; the focused control is visibly outlined; the dial pad's Number leaves the DOM while
    the dialog is open; nothing scrolls sideways at 390 px."""
    gw = yield start(tmp_path)
    browser = BrowserThread()
    screens = tmp_path / "screens"
    try:
        yield browser.start()

        def flow():
            page = browser.page
            kb = page.keyboard
            page.goto(page_url(gw))
            assert page.get_by_role("textbox", name="User name").evaluate(
                "e => e === document.activeElement")
            browser.screenshot(screens, "signed-out")
            kb.type("alice")
            kb.press("Tab")
            kb.type("wrong")
            kb.press("Enter")
            alert = page.get_by_role("alert").filter(has_text="Wrong user name or password")
            alert.wait_for()
            browser.screenshot(screens, "wrong-password")
            page.get_by_role("textbox", name="Password").fill("")
            kb.type(PASSWORD)                                # focus went back to Password
            kb.press("Enter")
            page.get_by_role("button", name="Add contact").wait_for()
            assert page.get_by_role("textbox", name="User name").count() == 0   # form removed
            number = page.get_by_role("textbox", name="Number")
            assert number.evaluate("e => e === document.activeElement")
            kb.type("004930123456")
            shown = number.input_value()
            assert page.evaluate(OUTLINE) not in ("none", "")  # visible focus
            browser.screenshot(screens, "typed-number")
            # to "Add contact" by Tab alone
            for _ in range(40):
                kb.press("Tab")
                if page.evaluate("document.activeElement.textContent") == "Add contact":
                    break
            else:
                raise AssertionError("Add contact is not reachable with Tab")
            assert page.evaluate(OUTLINE) not in ("none", "")
            kb.press("Enter")
            dialog = page.get_by_role("dialog", name="Add contact")
            dialog.wait_for()
            assert page.get_by_role("textbox", name="Number").count() == 1      # the dialog's
            assert dialog.get_by_role("textbox", name="Number").count() == 1
            assert page.locator("input[type=tel]").count() == 1               # in the DOM too
            browser.screenshot(screens, "add-contact")
            kb.type("Mum")
            kb.press("Tab")
            kb.type("+44 20 7946 0958")
            kb.press("Enter")
            call_mum = page.get_by_role("button", name="Call Mum", exact=True)
            call_mum.wait_for()
            assert page.get_by_role("dialog").count() == 0
            assert page.get_by_role("textbox", name="Number").input_value() == shown  # kept
            browser.screenshot(screens, "contact-added")
            page.get_by_role("button", name="Edit Mum").focus()
            kb.press("Enter")
            edit = page.get_by_role("dialog", name="Edit contact")
            edit.wait_for()
            kb.press("Control+a")
            kb.type("Mother")
            kb.press("Enter")
            page.get_by_role("button", name="Call Mother", exact=True).wait_for()
            assert page.get_by_role("button", name="Call Mum", exact=True).count() == 0
            page.get_by_role("button", name="Add contact").focus()
            kb.press("Enter")
            page.get_by_role("dialog", name="Add contact").wait_for()
            kb.press("Escape")                                   # cancel with the keyboard
            page.get_by_role("dialog").wait_for(state="detached")
            assert page.evaluate("document.activeElement.textContent") == "Add contact"
            page.get_by_role("button", name="Delete Mother").focus()
            kb.press("Enter")
            page.get_by_text("Mother was deleted.").wait_for()
            overflow = page.evaluate("document.scrollingElement.scrollWidth - innerWidth")
            browser.screenshot(screens, "contact-deleted")
            return shown, overflow
        shown, overflow = yield browser.run(flow)
        assert shown == "+49 301 234 56"                 # E.164 as typed, "00" became "+"
        assert overflow <= 0
        assert (yield gw.store.run("book_list", "alice")) == []
        assert not browser.errors, browser.errors
    finally:
        yield browser.stop()
        yield gw.stopService()


OUTLINE = "getComputedStyle(document.activeElement).outlineStyle"


@pytest_twisted.inlineCallbacks
def test_a_denied_microphone_places_no_call(tmp_path):
    gw = yield start(tmp_path)
    browser = BrowserThread(mic=tone_wav(tmp_path / "tone.wav", seconds=5), grant_mic=False)
    screens = tmp_path / "screens"
    try:
        yield browser.start()

        def flow():
            page = browser.page
            page.goto(page_url(gw))
            sign_in(page)
            page.get_by_role("textbox", name="Number").fill("+4930123456")
            page.get_by_role("button", name="Call", exact=True).click()
            status = page.get_by_role("status")
            page.wait_for_function("() => document.querySelector('[role=status]').textContent !== ''")
            text = status.text_content()
            browser.screenshot(screens, "microphone-blocked")
            return text, page.get_by_role("status").count(), \
                page.get_by_role("button", name="Hang up").count()
        text, statuses, hangups = yield browser.run(flow)
        assert (text, statuses, hangups) == ("microphone blocked", 1, 0)
        sent = [json.loads(x)["cmd"] for x in browser.sent]
        assert "call" not in sent and sent[:2] == ["login", "login"]
        assert gw.callpath.logger.rows == {} and not gw.callpath.logger.recent
    finally:
        yield browser.stop()
        yield gw.stopService()


@pytest_twisted.inlineCallbacks
def test_the_token_is_refreshed_before_it_expires(tmp_path):
    """With the page's clock jumped to two thirds of the token's lifetime, the page asks for a
    fresh token; that token logs in (over wss, the Python library) and the page stays signed in."""
    from twisted.internet import reactor
    gw = yield start(tmp_path, security={"token_lifetime": 600})
    browser = BrowserThread()
    session = None
    try:
        yield browser.start()

        def flow():
            page = browser.page
            page.clock.install()
            page.goto(page_url(gw))
            sign_in(page)
            page.get_by_role("button", name="Add contact").wait_for()
            page.clock.fast_forward(420 * 1000)     # timers due meanwhile fire once
            for _ in range(50):
                if any(json.loads(x)["cmd"] == "token" for x in browser.received):
                    break
                page.wait_for_timeout(100)
            return page.get_by_role("button", name="Sign out").count()
        signed_in = yield browser.run(flow)
        assert signed_in == 1
        sent = [json.loads(x) for x in browser.sent]
        got = [json.loads(x) for x in browser.received]
        welcome = next(x for x in got if x["cmd"] == "welcome")
        refresh = next(x for x in sent if x["cmd"] == "refresh")
        token = next(x for x in got if x["cmd"] == "token")
        assert token["req"] == refresh["req"] and token["expires"] >= welcome["expires"]
        host, port = gw.client.address("https")
        session = yield connect(f"wss://{host}:{port}", reactor, cacert=cert_path(gw))
        assert (yield session.login_token(token["token"])).user == "alice"
        assert not browser.errors, browser.errors
    finally:
        if session is not None:
            session.close()
        yield browser.stop()
        yield gw.stopService()
