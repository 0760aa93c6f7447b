"""Headless Chromium (Debian ``chromium``) driven by Playwright's sync API, for the page tests.

Playwright's sync objects belong to the thread that made them, and a test's callgw runs on the
reactor thread: ``BrowserThread`` runs every browser step on one dedicated thread
(``run(fn, *args)`` fires with ``fn``'s result), so the reactor keeps serving while the browser
waits. ``start()`` launches Chromium with the flags PLATFORM-NOTES.md lists, a fake microphone
playing a WAV when given, and a phone-sized page; ``stop()`` closes the browser and the thread.

Also: ``tone_wav`` (sox makes the microphone's tone), ``png_check`` (a screenshot decoded and
judged not blank), ``peak`` (the JavaScript that reads the page's analyser nodes).
"""
from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from playwright.sync_api import sync_playwright     # the test extra installs it

from tests.peers import require_peer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--autoplay-policy=no-user-gesture-required"]
PHONE = {"width": 390, "height": 844}


def need_browser():
    """Chromium and sox (tests/peers.py: skipped without them, a failure with CI=true)."""
    require_peer("chromium", "sox")


def tone_wav(path: Path, hz: int = 1000, seconds: int = 120) -> Path:
    """A 48 kHz mono 16-bit sine made by sox (the fake microphone plays it in a loop)."""
    subprocess.run(["sox", "-n", "-r", "48000", "-c", "1", "-b", "16", str(path), "synth",
                    str(seconds), "sine", str(hz), "vol", "0.5"], check=True, timeout=60)
    return path


class BrowserThread:
    """One Chromium on one thread; ``page`` is its only page (``run`` the steps that use it)."""

    def __init__(self, mic: Path | None = None, grant_mic: bool = True):
        self.mic = mic
        self.grant_mic = grant_mic
        self.pool = ThreadPool(1, 1, "playwright")
        self.playwright = self.browser = self.context = self.page = None
        self.errors: list[str] = []
        self.sent: list[str] = []           # WebSocket text frames the page sent
        self.received: list[str] = []       # and received

    def run(self, fn, *args, **kw):
        return deferToThreadPool(reactor, self.pool, fn, *args, **kw)

    def start(self):
        self.pool.start()
        return self.run(self._launch)

    def _launch(self):
        args = list(FLAGS)
        if self.mic is not None:
            args += ["--use-fake-device-for-media-stream",
                     f"--use-file-for-fake-audio-capture={self.mic}"]
        self.playwright = sync_playwright().start()
        self.browser = self.playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        self.context = self.browser.new_context(viewport=PHONE, ignore_https_errors=True)
        if self.grant_mic:
            self.context.grant_permissions(["microphone"])
        self.page = self.context.new_page()
        self.page.set_default_timeout(15000)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("websocket", self._websocket)
        return self.page

    def _websocket(self, ws):
        ws.on("framesent", lambda p: isinstance(p, str) and self.sent.append(p))
        ws.on("framereceived", lambda p: isinstance(p, str) and self.received.append(p))

    def stop(self):
        """Close the browser (and Playwright's driver), then the thread."""
        def close():
            try:
                if self.browser is not None:
                    self.browser.close()
            finally:
                if self.playwright is not None:
                    self.playwright.stop()
        d = self.run(close)

        def done(result):
            self.pool.stop()
            return result
        return d.addBoth(done)

    def screenshot(self, directory: Path, name: str) -> Path:
        """Save a full-page screenshot (call on the browser thread) and check it renders."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        png_check(path.read_bytes())
        return path


def png_check(data: bytes, min_colours: int = 8, min_ink: float = 0.02) -> dict:
    """Decode an 8-bit RGB(A) PNG (what Chromium writes) and fail if it is blank: fewer than
    ``min_colours`` colours, or under ``min_ink`` of the pixels differ from the commonest."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, chunks, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            chunks.append(body)
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and not interlace, header
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(b"".join(chunks))
    stride = width * bpp
    prev = bytearray(stride)
    counts: dict[bytes, int] = {}
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 0xFF
            elif f == 2:
                line[i] = (line[i] + b) & 0xFF
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        if y % 4 == 0:                                  # every 4th row is plenty to judge
            for x in range(0, stride, bpp * 2):
                px = bytes(line[x:x + 3])
                counts[px] = counts.get(px, 0) + 1
        prev = line
    total = sum(counts.values())
    ink = 1 - max(counts.values()) / total
    assert len(counts) >= min_colours and ink >= min_ink, \
        f"the screenshot looks blank: {len(counts)} colours, {ink:.1%} ink"
    return {"width": width, "height": height, "colours": len(counts), "ink": ink}


# The page's analysers (window.callgwPage.audio): the dominant frequency and its level in dB,
# and the RMS level, of what the microphone gives and what the speaker plays.
PEAK = """() => {
  const a = window.callgwPage.audio;
  if (!a) return null;
  const out = {};
  for (const [name, an] of [["mic", a.micAnalyser], ["speaker", a.speakerAnalyser]]) {
    const f = new Float32Array(an.frequencyBinCount);
    an.getFloatFrequencyData(f);
    let best = 1;
    for (let i = 2; i < f.length; i++) if (f[i] > f[best]) best = i;
    const t = new Float32Array(an.fftSize);
    an.getFloatTimeDomainData(t);
    let sum = 0;
    for (const v of t) sum += v * v;
    out[name] = { hz: best * a.ctx.sampleRate / an.fftSize, db: f[best],
                  rms: Math.sqrt(sum / t.length) };
  }
  return out;
}"""
