"""RTP relay benchmark: N concurrent G.711 calls through callgw's relay and its peers.

A call is two 50 packet/s streams of 172-byte packets (12-byte header + 160 octets), one each
way. Paths, all measured in one run:

- ``none``: generator to generator directly (the floor);
- ``callgw``: path (a), RTP to RTP through ``callgw.media`` relay sessions;
- ``callgw-frames``: path (b), client-protocol UDP media frames to RTP (relayed mode): the
  media frames of protocols/client/framing.py (24-byte header with the call's key, 160-octet
  payload; ``decode_media`` / ``encode_media``), one frame per datagram on one shared
  front-end UDP port, to a relay session's ``client_frame``, and back through ``deliver``;
- ``callgw-wss``: path (c), media frames over ``wss://`` as the call page sends them: one
  WebSocket-over-TLS session per call to callgw's real front end (twisted.web + autobahn at
  ``/client/v1/ws``, a ``ClientConnection`` logged in with a token, frames to a real
  ``CallMedia`` by key, ``serve --path c``), binary messages of one 184-byte frame each, masked
  with random keys; the gateway side is RTP to and from the C generator. The client side is a
  small node program (``WSS_GEN_JS``, built-in modules only: the C generator does no TLS or
  WebSocket) on the load's core below the C generator's priority, on the same schedule
  (a shared CLOCK_REALTIME start). Its CPU share is reported (``wss_gen_cpu``): while the relay
  ran out of core it used about a third of its own, so it was not the bottleneck. Latency
  toward the client is taken in JavaScript on arrival (an upper bound: its event loop's delay
  included); the relay's CPU counts the measured seconds only (not the TLS handshakes and
  logins). ``CALLGW_PROFILE=FILE`` profiles that relay process;
- ``twisted``: path (a) through bench/twisted_forwarder.py (a minimal Twisted forwarder);
- ``rtpengine``: path (a) through rtpengine's userspace relay, driven over the ng protocol
  (UDP, bencode) when the ``rtpengine`` binary exists.

The load generator is a small C program (below; built with the system C compiler into a
temporary directory) pinned to core 0: all client streams send from one socket and all gateway
streams from another (each call still has its own relay ports, so latching is per call), in
sendmmsg batches. It wakes on a timer every ``--tick-us`` (250 us) only, sends what is due and
reads what arrived with recvmmsg, taking each packet's kernel receive time (SO_TIMESTAMPNS):
arriving packets never wake it, so its cost per packet stays low and the relay's sends do not
pay for waking it; the
relay under test is pinned to core 1 (taskset), both at nice -10 (the machine is shared). Each packet carries its send time
(CLOCK_MONOTONIC); latency is receive minus send time. Each step runs ``--warmup`` seconds
(not counted: latching), ``--seconds`` measured, then drains; loss counts measured packets only.
Traffic goes to 127.0.0.1 only; every process stops by itself.

    .venv/bin/python bench/relay.py [--steps 100,250,500,...] [--seconds 6] [--paths ...]
"""
import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
GEN_BASE = 20000
RELAY_PORTS = (30000, 39999)
RTPENGINE_PORTS = (40000, 59999)
RTPENGINE_NG = 25223
# The relay under test on core 1, the load on core 0 (PLATFORM-NOTES.md). The machine is
# shared: an unrelated busy process on a core halves a process's share and adds scheduler
# delays of milliseconds. The load generator (which sleeps between packets and never saturates
# its core) runs SCHED_FIFO; the relay runs at nice -10, or SCHED_FIFO with --rt (steps are
# bounded in time, and the kernel's RT throttling leaves other work 5% of the core).
PIN_LOAD = ["chrt", "-f", "10", "taskset", "-c", "0"]
PIN_RELAY = ["nice", "-n", "-10", "taskset", "-c", "1"]
PIN_RELAY_RT = ["chrt", "-f", "10", "taskset", "-c", "1"]

GEN_C = r"""
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Two sockets: side 0 (the clients) on BASE, side 1 (the gateways) on BASE + 1; every stream
   sends from its side's socket to its own destination, in sendmmsg batches. */
typedef struct { struct sockaddr_in dst; int side, kind; uint32_t call, ssrc, ts; uint16_t seq; } stream_t;
#define HIST 2000000
#define B 64
static uint32_t hist[HIST];
static uint64_t now_ns(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000ull + t.tv_nsec; }
static uint64_t real_ns(void) { struct timespec t; clock_gettime(CLOCK_REALTIME, &t);
  return (uint64_t)t.tv_sec * 1000000000ull + t.tv_nsec; }
static uint64_t pct(uint64_t total, double q) { uint64_t want = (uint64_t)(total * q), c = 0;
  for (uint64_t i = 0; i < HIST; i++) { c += hist[i]; if (c > want) return i; } return HIST; }
static int fds[2];
static unsigned char sbuf[2][B][184];
static struct iovec siov[2][B];
static struct mmsghdr smsg[2][B];
static int nbatch[2];
static uint64_t send_err, sent_total, sent_meas, warm_end, warm_real, send_real;
static uint64_t batch_time[2][B];

static void flush(int side) {
  int n = nbatch[side], off = 0;
  while (off < n) {
    int r = sendmmsg(fds[side], smsg[side] + off, n - off, 0);
    if (r < 0) { send_err += n - off; break; }
    for (int j = off; j < off + r; j++) {
      sent_total++; if (batch_time[side][j] >= warm_real && batch_time[side][j] < send_real) sent_meas++; }
    off += r;
  }
  nbatch[side] = 0;
}

int main(int argc, char **argv) {
  if (argc < 7) { fprintf(stderr, "usage: gen CONFIG BASE WARMUP MEASURE DRAIN TICK_US [START_REAL_NS]\n"); return 2; }
  FILE *f = fopen(argv[1], "r"); int S; if (!f || fscanf(f, "%d", &S) != 1) return 2;
  int base = atoi(argv[2]);
  stream_t *st = calloc(S, sizeof(stream_t));
  for (int side = 0; side < 2; side++) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0); int sz = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz); setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    int one = 1; setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
    struct sockaddr_in a = {0}; a.sin_family = AF_INET; a.sin_port = htons(base + side); inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (bind(fd, (struct sockaddr *)&a, sizeof a)) { fprintf(stderr, "bind %d: %s\n", base + side, strerror(errno)); return 3; }
    fds[side] = fd;
  }
  for (int i = 0; i < S; i++) {
    int side, dport, kind; unsigned call; char ip[64];
    if (fscanf(f, "%d %63s %d %d %u", &side, ip, &dport, &kind, &call) != 5) return 2;
    st[i].side = side; st[i].kind = kind; st[i].call = call; st[i].ssrc = 0x1000 + i; st[i].seq = i * 7; st[i].ts = i * 1000;
    st[i].dst.sin_family = AF_INET; st[i].dst.sin_port = htons(dport); inet_pton(AF_INET, ip, &st[i].dst.sin_addr);
  }
  const uint64_t period = 20000000ull;
  uint64_t start = now_ns() + 20000000ull;
  if (argc > 7) { uint64_t at = strtoull(argv[7], NULL, 10), r = real_ns();  /* a shared start (CLOCK_REALTIME ns) */
    start = at > r ? now_ns() + (at - r) : now_ns(); }
  warm_end = start + (uint64_t)(atof(argv[3]) * 1e9);
  uint64_t send_end = warm_end + (uint64_t)(atof(argv[4]) * 1e9), stop = send_end + (uint64_t)(atof(argv[5]) * 1e9);
  uint64_t skew = real_ns() - now_ns(); warm_real = warm_end + skew; send_real = send_end + skew;
  uint64_t m = 0, recv_meas = 0, recv_total = 0, late = 0, late_max = 0;
  uint64_t tick = (uint64_t)(atof(argv[6]) * 1000.0);
  static unsigned char rbufs[B][2048]; static char rctl[B][64]; struct iovec riov[B]; struct mmsghdr rmsg[B];
  for (;;) {
    uint64_t t = now_ns(); if (t >= stop) break;
    while (1) {
      uint64_t k = m % S, due = start + (m / S) * period + k * period / S;
      if (due > t || due >= send_end) break;
      stream_t *s = &st[k]; int side = s->side, j = nbatch[side];
      unsigned char *pkt = sbuf[side][j]; int po = s->kind == 0 ? 12 : 24;  /* payload offset */
      memset(pkt, 0, 24); memset(pkt + po + 12, 0xff, 160 - 12);
      pkt[0] = s->kind == 0 ? 0x80 : 0x01; pkt[1] = 0;  /* RTP PT 0, or client media frame v1 */
      uint16_t seq = htons(s->seq); uint32_t ts = htonl(s->ts); memcpy(pkt + 2, &seq, 2); memcpy(pkt + 4, &ts, 4);
      uint32_t w = htonl(s->kind == 0 ? s->ssrc : s->call); memcpy(pkt + 8, &w, 4);  /* SSRC, or key[0:4] */
      uint64_t wall = real_ns(); memcpy(pkt + po, &wall, 8); uint32_t idx = k; memcpy(pkt + po + 8, &idx, 4);
      if (t - due > 1000000ull + tick) late++;
      if (t - due > late_max) late_max = t - due;
      siov[side][j].iov_base = pkt; siov[side][j].iov_len = po + 160;
      memset(&smsg[side][j].msg_hdr, 0, sizeof(struct msghdr));
      smsg[side][j].msg_hdr.msg_name = &s->dst; smsg[side][j].msg_hdr.msg_namelen = sizeof s->dst;
      smsg[side][j].msg_hdr.msg_iov = &siov[side][j]; smsg[side][j].msg_hdr.msg_iovlen = 1;
      batch_time[side][j] = wall; nbatch[side] = j + 1;
      if (nbatch[side] == B) flush(side);
      s->seq++; s->ts += 160; m++;
    }
    flush(0); flush(1);
    for (int side = 0; side < 2; side++) {
      for (;;) {
        for (int j = 0; j < B; j++) { riov[j].iov_base = rbufs[j]; riov[j].iov_len = 2048; memset(&rmsg[j].msg_hdr, 0, sizeof(struct msghdr));
          rmsg[j].msg_hdr.msg_iov = &riov[j]; rmsg[j].msg_hdr.msg_iovlen = 1;
          rmsg[j].msg_hdr.msg_control = rctl[j]; rmsg[j].msg_hdr.msg_controllen = sizeof rctl[j]; }
        int r = recvmmsg(fds[side], rmsg, B, MSG_DONTWAIT, NULL);
        if (r <= 0) break;
        uint64_t fallback = real_ns();
        for (int j = 0; j < r; j++) {
          recv_total++; int po = rbufs[j][0] == 0x01 ? 24 : 12; if (rmsg[j].msg_len < po + 12) continue;
          uint64_t tr = fallback;
          for (struct cmsghdr *c = CMSG_FIRSTHDR(&rmsg[j].msg_hdr); c; c = CMSG_NXTHDR(&rmsg[j].msg_hdr, c))
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_TIMESTAMPNS) {
              struct timespec k; memcpy(&k, CMSG_DATA(c), sizeof k); tr = (uint64_t)k.tv_sec * 1000000000ull + k.tv_nsec; }
          uint64_t sent; memcpy(&sent, rbufs[j] + po, 8);
          if (sent >= warm_real && sent < send_real) { recv_meas++; uint64_t us = tr > sent ? (tr - sent) / 1000 : 0; hist[us < HIST ? us : HIST - 1]++; }
        }
        if (r < B) break;
      }
    }
    uint64_t next = t + tick; if (next > stop) next = stop;
    struct timespec ab = {next / 1000000000ull, next % 1000000000ull};
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ab, NULL);
  }
  struct rusage ru; getrusage(RUSAGE_SELF, &ru);
  double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
  double wall = (stop - start) / 1e9;
  printf("{\"streams\": %d, \"sent\": %lu, \"received\": %lu, \"send_errors\": %lu, \"sent_total\": %lu, "
         "\"received_total\": %lu, \"late_sends\": %lu, \"late_max_us\": %lu, \"p50_us\": %lu, \"p99_us\": %lu, "
         "\"p999_us\": %lu, \"cpu_s\": %.3f, \"wall_s\": %.3f}\n", S, sent_meas, recv_meas, send_err, sent_total,
         recv_total, late, late_max / 1000, pct(recv_meas, 0.5), pct(recv_meas, 0.99), pct(recv_meas, 0.999), cpu, wall);
  return 0;
}
"""


WSS_GEN_JS = r"""
// Path (c)'s client side: N WebSocket-over-TLS sessions to callgw (one per call, as a browser
// has), token login, then one 184-byte binary media frame per call every 20 ms (client
// protocol framing: kind 1, PCMU, sequence, timestamp, 16-byte key, 160 octets whose first 8
// carry the CLOCK_REALTIME send time in ns, as the C generator's). Frames coming back carry the
// C generator's send time: their latency is measured here on arrival in JavaScript (an upper
// bound: it includes this process's own event-loop delay). Frames are masked with random keys,
// as browsers do. Writes one JSON line of figures.
'use strict';
const fs = require('fs'), tls = require('tls'), crypto = require('crypto');
const cfg = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const N = cfg.keys.length, PERIOD = 20e6;                       // ns
// CLOCK_REALTIME in ns, as the C generator and the kernel's receive timestamps have it: the
// monotonic clock plus the offset the orchestrator measured (performance.timeOrigin is off by
// more than the latencies measured here)
const OFFSET = BigInt(cfg.realtime_offset_ns);
const nowReal = () => process.hrtime.bigint() + OFFSET;
const start = BigInt(cfg.start_real_ns), warmEnd = start + BigInt(Math.round(cfg.warmup * 1e9));
const sendEnd = warmEnd + BigInt(Math.round(cfg.seconds * 1e9));
const stop = sendEnd + BigInt(Math.round(cfg.drain * 1e9));
const HIST = 2000000, hist = new Uint32Array(HIST);
let sentMeas = 0, sentTotal = 0, recvMeas = 0, recvTotal = 0, ready = 0, failed = 0, late = 0, dropped = 0;
let pool = Buffer.alloc(0), poolAt = 0;
function maskKey() { if (poolAt + 4 > pool.length) { pool = crypto.randomBytes(65536); poolAt = 0; } poolAt += 4; return pool.subarray(poolAt - 4, poolAt); }
function wsFrame(opcode, payload) {          // a client frame: FIN, masked
  const len = payload.length; const head = len < 126 ? 6 : 8; const out = Buffer.allocUnsafe(head + len);
  out[0] = 0x80 | opcode; let o;
  if (len < 126) { out[1] = 0x80 | len; o = 2; } else { out[1] = 0x80 | 126; out.writeUInt16BE(len, 2); o = 4; }
  const mk = maskKey(); mk.copy(out, o); o += 4;
  for (let i = 0; i < len; i++) out[o + i] = payload[i] ^ mk[i & 3];
  return out;
}
const calls = [];
for (let i = 0; i < N; i++) {
  const c = { i, key: Buffer.from(cfg.keys[i], 'hex'), sock: null, buf: Buffer.alloc(0), open: false, ready: false, seq: i * 7, ts: i * 1000 };
  calls.push(c);
  setTimeout(() => connect(c), 2 * i);             // not all at once: the listen backlog
}
function connect(c) {
  const sock = tls.connect({ host: '127.0.0.1', port: cfg.wss_port, rejectUnauthorized: false });
  c.sock = sock; sock.setNoDelay(true);
  const wsKey = crypto.randomBytes(16).toString('base64');
  sock.on('secureConnect', () => sock.write('GET /client/v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    'Sec-WebSocket-Key: ' + wsKey + '\r\nSec-WebSocket-Version: 13\r\n\r\n'));
  sock.on('data', (d) => { c.buf = c.buf.length ? Buffer.concat([c.buf, d]) : d; pump(c); });
  sock.on('error', () => { if (!c.ready) failed++; c.ready = false; });
  sock.on('close', () => { c.ready = false; });
}
function pump(c) {
  if (!c.open) {
    const end = c.buf.indexOf('\r\n\r\n'); if (end < 0) return;
    const head = c.buf.subarray(0, end).toString();
    if (!head.startsWith('HTTP/1.1 101')) { failed++; c.sock.destroy(); return; }
    c.open = true; c.buf = c.buf.subarray(end + 4);
    c.sock.write(wsFrame(1, Buffer.from(cfg.logins[c.i])));
  }
  for (;;) {
    if (c.buf.length < 2) return;
    const op = c.buf[0] & 0x0f; let len = c.buf[1] & 0x7f, o = 2;
    if (len === 126) { if (c.buf.length < 4) return; len = c.buf.readUInt16BE(2); o = 4; }
    else if (len === 127) { if (c.buf.length < 10) return; len = Number(c.buf.readBigUInt64BE(2)); o = 10; }
    if (c.buf.length < o + len) return;
    const p = c.buf.subarray(o, o + len); c.buf = c.buf.subarray(o + len);
    if (op === 1) { if (!c.ready && p.toString().includes('"welcome"')) { c.ready = true; ready++; } }
    else if (op === 2) {
      recvTotal++;
      if (len >= 24 + 8) {
        const t = nowReal(), sent = p.readBigUInt64LE(24);
        if (sent >= warmEnd && sent < sendEnd) { recvMeas++; const us = t > sent ? Number((t - sent) / 1000n) : 0; hist[us < HIST ? us : HIST - 1]++; }
      }
    } else if (op === 9) { c.sock.write(wsFrame(10, p)); }
    else if (op === 8) { c.ready = false; }
  }
}
const payload = Buffer.alloc(184, 0xff);
let m = 0;
function tick() {
  const t = nowReal();
  if (t >= stop) return finish();
  while (true) {
    const k = m % N, due = start + BigInt(Math.floor(m / N)) * BigInt(PERIOD) + BigInt(Math.floor(k * PERIOD / N));
    if (due > t || due >= sendEnd) break;
    const c = calls[k]; m++;
    if (!c.ready) { dropped++; continue; }
    payload[0] = 1; payload[1] = 0; payload.writeUInt16BE(c.seq & 0xffff, 2); payload.writeUInt32BE(c.ts >>> 0, 4);
    c.key.copy(payload, 8); const wall = nowReal(); payload.writeBigUInt64LE(wall, 24); payload.writeUInt32LE(k, 32);
    if (t - due > 1000000n) late++;
    c.sock.write(wsFrame(2, payload)); sentTotal++; if (wall >= warmEnd && wall < sendEnd) sentMeas++;
    c.seq++; c.ts += 160;
  }
  setTimeout(tick, 1);
}
function pct(total, q) { const want = Math.floor(total * q); let c = 0; for (let i = 0; i < HIST; i++) { c += hist[i]; if (c > want) return i; } return HIST; }
let cpu0 = null, wall0 = null;
function finish() {
  const u = process.cpuUsage(cpu0);
  const wall = Number(nowReal() - wall0) / 1e9;
  process.stdout.write(JSON.stringify({ sessions: N, ready, failed, sent: sentMeas, sent_total: sentTotal, not_sent: dropped,
    received: recvMeas, received_total: recvTotal, late_sends: late, p50_us: pct(recvMeas, 0.5), p99_us: pct(recvMeas, 0.99),
    p999_us: pct(recvMeas, 0.999), cpu_s: (u.user + u.system) / 1e6, wall_s: wall }) + '\n');
  process.exit(0);
}
const wait = Number(start - nowReal()) / 1e6;
setTimeout(() => { cpu0 = process.cpuUsage(); wall0 = nowReal(); tick(); }, Math.max(0, wait));
"""

# --- relay servers (run in their own process, pinned to core 1) ------------------------------

def serve(args):
    """Run callgw's relay for ``args.calls`` calls; print the destinations as one JSON line."""
    import resource
    sys.path.insert(0, ROOT)
    from twisted.internet import epollreactor
    epollreactor.install()
    from twisted.internet import reactor
    from twisted.internet.protocol import DatagramProtocol

    from callgw.callserver.events import MediaDescription
    from callgw.media import MediaRelay, PortRange

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    relay = MediaRelay(reactor, PortRange(*RELAY_PORTS), inactivity_timeout=0, rtcp_interval=0)
    sessions = []
    dst = []
    ports = {}

    def keep(result, key):
        ports[key] = result[1]

    frontend = None
    by_key = {}
    if args.path == "b":
        from protocols.client.errors import RemoteProtocolError
        from protocols.client.framing import MediaFrame, decode_media, encode_media

        class Frontend(DatagramProtocol):
            """The client protocol's UDP media path: one media frame per datagram."""

            def datagramReceived(self, data, addr):
                try:
                    frame = decode_media(data)
                except RemoteProtocolError:
                    return
                session = by_key.get(frame.key)
                if session is not None:
                    session.client_frame(frame.payload, frame.sequence, frame.timestamp)
        frontend = Frontend()
        fport = reactor.listenUDP(0, frontend, interface="127.0.0.1").getHost().port

    for i in range(args.calls):
        session = relay.session(str(i))
        sessions.append(session)
        client_addr = ("127.0.0.1", args.gen_base)
        gateway_addr = ("127.0.0.1", args.gen_base + 1)
        session.allocate("gateway").addCallback(keep, (i, "gateway"))
        session.connect("gateway", MediaDescription(*gateway_addr, codecs=("PCMU",)))
        if args.path == "a":
            session.allocate("client").addCallback(keep, (i, "client"))
            session.connect("client", MediaDescription(*client_addr, codecs=("PCMU",)))
            dst.append(["127.0.0.1", ports[(i, "client")]])
        else:
            key = i.to_bytes(4, "big") + bytes(12)
            by_key[key] = session

            def deliver(payload, seq, ts, key=key, addr=client_addr):
                frontend.transport.write(encode_media(MediaFrame(key, 0, seq, ts, payload)), addr)
            session.attach_client(deliver, codec="PCMU", ptime=20)
            dst.append(["127.0.0.1", fport])
        dst.append(["127.0.0.1", ports[(i, "gateway")]])
    import gc
    gc.collect()
    gc.freeze()  # the sessions are long-lived: keep them out of every full collection
    print(json.dumps({"dst": dst}), flush=True)
    reactor.callLater(args.lifetime, reactor.stop)
    reactor.run()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"cpu": usage.ru_utime + usage.ru_stime}), file=sys.stderr)


def serve_wss(args):
    """Path (c): callgw's real WebSocket front end over TLS (twisted.web + autobahn, the
    ``/client/v1/ws`` resource, ``ClientConnection`` sessions logged in with tokens, media frames
    to a real ``CallMedia`` by key), one session per call as a browser has; the gateway side is
    RTP to the C generator. Prints the gateway destinations, the port, each call's login text
    and key as one JSON line."""
    import resource
    import tempfile
    from pathlib import Path
    sys.path.insert(0, ROOT)
    from twisted.internet import epollreactor
    epollreactor.install()
    from twisted.internet import defer, reactor, ssl
    from twisted.web.resource import Resource
    from twisted.web.server import Site

    from callgw.callserver.events import MediaDescription
    from callgw.callserver.media import CallMedia
    from callgw.frontend.connection import SessionManager
    from callgw.frontend.tls import make_self_signed
    from callgw.web.websocket import make_resource
    from protocols.client import messages as m
    from tests.frontend.test_connection import Store
    from tests.helpers import make_config

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    tmp = Path(tempfile.mkdtemp(prefix="callgw-wss-"))
    media = CallMedia(reactor, {"address": "127.0.0.1",
                                "rtp_ports": "%d-%d" % RELAY_PORTS,
                                "inactivity_timeout": 0}, clock=reactor)
    waiting = {}        # key -> the call's CallMediaSession, until its first frame binds it

    class Leg:
        """What ``CallMediaSession`` reads of a client leg."""

        def __init__(self, conn, key):
            self.conn, self.key, self.codec = conn, key, "PCMU"

        def use_media(self, media_session):
            self.media = media_session

    class FrontEnd:
        """The front end's media routing (``FrontEnd.client_media``: ``CallMedia.client_frame``
        by key); a call's first frame binds its media session to the session that sent it, as
        ``connected`` does in a call."""
        media_frames_dropped = 0

        def session_opened(self, conn):
            return defer.succeed({})

        def client_message(self, conn, message):
            return None

        def client_media(self, conn, frame):
            cms = waiting.pop(bytes(frame.key), None)
            if cms is not None:
                leg = Leg(conn, bytes(frame.key))
                cms.bind(leg)
                cms.client_connected(leg)
            if not media.client_frame(conn, frame):
                self.media_frames_dropped += 1

        def session_closed(self, conn, reason):
            return None

    manager = SessionManager(Store(), FrontEnd(), make_config(tmp), reactor)
    cert, key = str(tmp / "cert.pem"), str(tmp / "key.pem")
    make_self_signed(cert, key, ["127.0.0.1"], reactor.seconds())
    root, client, v1 = Resource(), Resource(), Resource()
    root.putChild(b"client", client)
    client.putChild(b"v1", v1)
    v1.putChild(b"ws", make_resource(manager))
    context = ssl.DefaultOpenSSLContextFactory(key, cert)
    port = reactor.listenSSL(0, Site(root), context, backlog=1024,
                             interface="127.0.0.1").getHost().port
    dst, logins, keys, ports = [], [], [], {}

    def keep(result, i):
        ports[i] = result[1]
    for i in range(args.calls):
        cms = media.session("call-%d" % i)
        cms.allocate("b").addCallback(keep, i)
        cms.connect("b", MediaDescription("127.0.0.1", args.gen_base + 1, ("PCMU",)))
        call_key = i.to_bytes(4, "big") + bytes(12)       # as the C generator writes it
        waiting[call_key] = cms
        token, _ = manager.tokens.issue("alice", reactor.seconds())
        logins.append(m.encode(m.Login(token=token)).decode())
        keys.append(call_key.hex())
        dst.append(["127.0.0.1", 0])                        # the client side: the wss port
        dst.append(["127.0.0.1", ports[i]])
    import gc
    gc.collect()
    gc.freeze()
    print(json.dumps({"dst": dst, "wss_port": port, "logins": logins, "keys": keys}),
          flush=True)
    reactor.callLater(args.lifetime, reactor.stop)
    profile_to = os.environ.get("CALLGW_PROFILE")     # where path (c)'s time goes
    if profile_to:
        import cProfile
        cProfile.runctx("reactor.run()", globals(), {"reactor": reactor}, profile_to)
    else:
        reactor.run()


# --- rtpengine over the ng protocol -------------------------------------------------------------

def bencode(value) -> bytes:
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, list):
        return b"l" + b"".join(bencode(v) for v in value) + b"e"
    if isinstance(value, dict):
        return b"d" + b"".join(bencode(k) + bencode(value[k]) for k in sorted(value)) + b"e"
    raise TypeError(value)


def bdecode(data: bytes, i: int = 0):
    c = data[i:i + 1]
    if c == b"i":
        end = data.index(b"e", i)
        return int(data[i + 1:end]), end + 1
    if c in (b"l", b"d"):
        items, i = [], i + 1
        while data[i:i + 1] != b"e":
            item, i = bdecode(data, i)
            items.append(item)
        if c == b"l":
            return items, i + 1
        return {items[k].decode(): items[k + 1] for k in range(0, len(items), 2)}, i + 1
    colon = data.index(b":", i)
    n = int(data[i:colon])
    return data[colon + 1:colon + 1 + n], colon + 1 + n


class Rtpengine:
    """An rtpengine daemon (userspace forwarding) and an ng client for it."""

    def __init__(self, workdir):
        self.proc = None
        self.sock = None
        self.workdir = workdir
        self.calls = []

    @staticmethod
    def available():
        return shutil.which("rtpengine") is not None

    def start(self):
        cmd = pin_relay() + ["rtpengine", "--foreground", "--log-stderr",
               "--log-level=3", "--table=-1", "--interface=127.0.0.1",
               "--listen-ng=127.0.0.1:%d" % RTPENGINE_NG,
               "--port-min=%d" % RTPENGINE_PORTS[0], "--port-max=%d" % RTPENGINE_PORTS[1],
               "--pidfile=%s/rtpengine.pid" % self.workdir, "--delete-delay=0",
               "--timeout=60"]
        self.log = open(os.path.join(self.workdir, "rtpengine.log"), "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(2.0)
        for _ in range(50):
            try:
                if self.ng({"command": "ping"}).get("result") == b"pong":
                    return
            except (OSError, ValueError):
                time.sleep(0.1)
        raise RuntimeError("rtpengine did not answer ng ping")

    def ng(self, message: dict) -> dict:
        cookie = b"%08x" % random.getrandbits(32)
        self.sock.sendto(cookie + b" " + bencode(message), ("127.0.0.1", RTPENGINE_NG))
        while True:
            data, _ = self.sock.recvfrom(65536)
            if data.startswith(cookie + b" "):
                return bdecode(data[len(cookie) + 1:])[0]

    @staticmethod
    def sdp(port: int) -> str:
        return ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                "m=audio %d RTP/AVP 0\r\na=sendrecv\r\n" % port)

    @staticmethod
    def port_of(sdp: bytes) -> int:
        for line in sdp.decode().splitlines():
            if line.startswith("m=audio "):
                return int(line.split()[1])
        raise ValueError("no m=audio line")

    def setup(self, calls: int, gen_base: int):
        dst = []
        self.calls = []
        tag = random.getrandbits(24)
        for i in range(calls):
            call_id = "bench-%x-%d" % (tag, i)
            offer = self.ng({"command": "offer", "call-id": call_id, "from-tag": "a%d" % i,
                             "sdp": self.sdp(gen_base)})
            answer = self.ng({"command": "answer", "call-id": call_id, "from-tag": "a%d" % i,
                              "to-tag": "b%d" % i, "sdp": self.sdp(gen_base + 1)})
            if offer.get("result") != b"ok" or answer.get("result") != b"ok":
                raise RuntimeError("rtpengine refused call %d: %r %r" % (i, offer, answer))
            dst += [["127.0.0.1", self.port_of(answer["sdp"])],
                    ["127.0.0.1", self.port_of(offer["sdp"])]]
            self.calls.append(call_id)
        return dst

    def teardown(self):
        for i, call_id in enumerate(self.calls):
            self.ng({"command": "delete", "call-id": call_id, "from-tag": "a%d" % i})
        self.calls = []

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.sock is not None:
            self.sock.close()


# --- orchestration --------------------------------------------------------------------------

RT = False


def pin_relay():
    return PIN_RELAY_RT if RT else PIN_RELAY


def cpu_seconds(pid: int):
    """(user, system) CPU seconds of ``pid`` so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def build_generator(workdir: str) -> str:
    source = os.path.join(workdir, "gen.c")
    binary = os.path.join(workdir, "gen")
    with open(source, "w") as f:
        f.write(GEN_C)
    subprocess.run(["cc", "-O2", "-o", binary, source], check=True)
    return binary


def run_generator(gen, workdir, dst, calls, opts, frames=False):
    config = os.path.join(workdir, "gen.conf")
    with open(config, "w") as f:
        f.write("%d\n" % (2 * calls))
        for i in range(calls):
            for side in (0, 1):
                host, port = dst[2 * i + side]
                kind = 1 if (frames and side == 0) else 0
                f.write("%d %s %d %d %d\n" % (side, host, port, kind, i))
    out = subprocess.run(PIN_LOAD + [gen, config, str(GEN_BASE), str(opts.warmup),
                          str(opts.seconds), "0.5", str(opts.tick_us)], capture_output=True, text=True,
                         timeout=opts.warmup + opts.seconds + 30)
    if out.returncode != 0:
        raise RuntimeError("generator failed: %s" % out.stderr.strip())
    return json.loads(out.stdout)


def start_server(cmd, info=False):
    proc = subprocess.Popen(pin_relay() + cmd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    line = proc.stdout.readline()
    if not line:
        proc.wait(5)
        raise RuntimeError("server failed: %s" % proc.stderr.read()[-2000:])
    return proc, (json.loads(line) if info else json.loads(line)["dst"])


#: path (c)'s client generator (node) on the load's core, below the C generator's priority
PIN_NODE = ["chrt", "-f", "5", "taskset", "-c", "0"]


def run_wss(gen, workdir, info, calls, opts, pid):
    """Path (c): node's WebSocket sessions for the client side, the C generator for the
    gateway side (RTP), both on one schedule from a shared CLOCK_REALTIME start. Loss and
    latency per direction; the step's figures are the sum (loss) and the worse (latency)."""
    script = os.path.join(workdir, "wssgen.js")
    with open(script, "w") as f:
        f.write(WSS_GEN_JS)
    start = time.time_ns() + int((2.0 + 0.008 * calls) * 1e9)      # connect and log in first
    offset = min((time.time_ns() - time.monotonic_ns()) for _ in range(2000))
    cfg = os.path.join(workdir, "wss.json")
    with open(cfg, "w") as f:
        json.dump({"wss_port": info["wss_port"], "logins": info["logins"], "keys": info["keys"],
                   "start_real_ns": str(start), "warmup": opts.warmup, "seconds": opts.seconds,
                   "drain": 0.5, "realtime_offset_ns": str(offset)}, f)
    node = subprocess.Popen(PIN_NODE + ["node", script, cfg], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        config = os.path.join(workdir, "gen.conf")
        with open(config, "w") as f:
            f.write("%d\n" % calls)
            for i in range(calls):
                host, port = info["dst"][2 * i + 1]
                f.write("1 %s %d 0 %d\n" % (host, port, i))
        load = subprocess.Popen(PIN_LOAD + [gen, config, str(GEN_BASE), str(opts.warmup),
                                            str(opts.seconds), "0.5", str(opts.tick_us),
                                            str(start)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # the relay's CPU over the measured seconds only (not the TLS handshakes and logins)
        window = []
        for at in (opts.warmup, opts.warmup + opts.seconds):
            time.sleep(max(0.0, (start + at * 1e9 - time.time_ns()) / 1e9))
            window.append((time.monotonic(), sum(cpu_seconds(pid))))
        stdout_c, stderr_c = load.communicate(timeout=opts.seconds + 60)
        if load.returncode != 0:
            raise RuntimeError("generator failed: %s" % stderr_c.strip())
        rtp = json.loads(stdout_c)
        stdout, stderr = node.communicate(timeout=30)
    finally:
        if node.poll() is None:
            node.kill()
            node.wait()
    if not stdout.strip():
        raise RuntimeError("wss generator failed: %s" % stderr[-2000:])
    ws = json.loads(stdout)
    return {"sent": rtp["sent"] + ws["sent"], "received": rtp["received"] + ws["received"],
            "received_total": rtp["received_total"] + ws["received_total"],
            "send_errors": rtp["send_errors"], "late_sends": rtp["late_sends"] + ws["late_sends"],
            "p50_us": max(rtp["p50_us"], ws["p50_us"]), "p99_us": max(rtp["p99_us"], ws["p99_us"]),
            "p999_us": max(rtp["p999_us"], ws["p999_us"]),
            "cpu_s": rtp["cpu_s"] + ws["cpu_s"], "wall_s": rtp["wall_s"],
            "to_gateway": {k: rtp[k] for k in ("sent", "received", "p50_us", "p99_us")},
            "to_client": {k: ws[k] for k in ("sent", "received", "p50_us", "p99_us")},
            "sessions_ready": ws["ready"], "sessions_failed": ws["failed"],
            "frames_not_sent": ws["not_sent"],
            "relay_window": (window[1][1] - window[0][1], window[1][0] - window[0][0]),
            "wss_gen_cpu": round(ws["cpu_s"] / ws["wall_s"], 3) if ws["wall_s"] else None}


def stop_server(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def one_step(path, calls, gen, workdir, opts, engine):
    lifetime = str(opts.warmup + opts.seconds + 20)
    proc = None
    try:
        if path == "none":
            dst = [["127.0.0.1", GEN_BASE + 1], ["127.0.0.1", GEN_BASE]] * calls
            pid = None
        elif path == "rtpengine":
            dst = engine.setup(calls, GEN_BASE)
            pid = engine.proc.pid
        elif path == "twisted":
            proc, dst = start_server([sys.executable, os.path.join(HERE, "twisted_forwarder.py"),
                                      "--calls", str(calls), "--lifetime", lifetime])
            pid = proc.pid
        elif path == "callgw-wss":
            proc, info = start_server([sys.executable, os.path.abspath(__file__), "serve",
                                       "--path", "c", "--calls", str(calls),
                                       "--gen-base", str(GEN_BASE), "--lifetime",
                                       str(float(lifetime) + 10 + 0.008 * calls)], info=True)
            pid = proc.pid
        else:
            proc, dst = start_server([sys.executable, os.path.abspath(__file__), "serve",
                                      "--path", "a" if path == "callgw" else "b",
                                      "--calls", str(calls), "--gen-base", str(GEN_BASE),
                                      "--lifetime", lifetime])
            pid = proc.pid
        before = cpu_seconds(pid) if pid else (0.0, 0.0)
        started = time.monotonic()
        if path == "callgw-wss":
            result = run_wss(gen, workdir, info, calls, opts, pid)
        else:
            result = run_generator(gen, workdir, dst, calls, opts,
                                   frames=(path == "callgw-frames"))
        elapsed = time.monotonic() - started
        after = cpu_seconds(pid) if pid else (0.0, 0.0)
        user, system = after[0] - before[0], after[1] - before[1]
        used = user + system
        result["relay_cpu"] = round(used / elapsed, 3) if pid else None
        result["relay_user_share"] = round(user / used, 2) if used else None
        relayed = result["received_total"]
        result["relay_us_per_packet"] = round(1e6 * used / relayed, 2) if pid and relayed else None
        if "relay_window" in result:    # path (c): the measured seconds only, not the logins
            cpu, seconds = result.pop("relay_window")
            result["relay_cpu"] = round(cpu / seconds, 3)
            packets = result["received"] * seconds / opts.seconds
            result["relay_us_per_packet"] = round(1e6 * cpu / packets, 2) if packets else None
    finally:
        if proc is not None:
            stop_server(proc)
        if path == "rtpengine":
            engine.teardown()
    sent = result["sent"]
    result["loss"] = 1.0 - result["received"] / sent if sent else 1.0
    result["calls"] = calls
    result["path"] = path
    result["gen_cpu"] = round(result["cpu_s"] / result["wall_s"], 3)
    return result


def held(result, opts) -> bool:
    """A step is held when loss and p99 latency stay under the bounds."""
    return result["loss"] < opts.max_loss and result["p99_us"] < 1000 * opts.max_p99_ms


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command")
    s = sub.add_parser("serve")
    s.add_argument("--path", choices=("a", "b", "c"), default="a")
    s.add_argument("--calls", type=int, required=True)
    s.add_argument("--gen-base", type=int, default=GEN_BASE)
    s.add_argument("--lifetime", type=float, default=60.0)
    parser.add_argument("--steps", default="100,250,500,750,1000,1250,1500,1750,2000")
    parser.add_argument("--paths",
                        default="none,callgw,callgw-frames,callgw-wss,twisted,rtpengine")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--warmup", type=float, default=1.5)
    parser.add_argument("--max-loss", type=float, default=0.001)
    parser.add_argument("--max-p99-ms", type=float, default=50.0)
    parser.add_argument("--rt", action="store_true", help="run the relay SCHED_FIFO too")
    parser.add_argument("--tick-us", type=float, default=250.0,
                        help="the generator wakes this often, sends what is due, reads")
    parser.add_argument("--json", help="also write all results to this file")
    opts = parser.parse_args()
    if opts.command == "serve":
        return serve_wss(opts) if opts.path == "c" else serve(opts)
    global RT
    RT = opts.rt
    steps = [int(n) for n in opts.steps.split(",")]
    paths = opts.paths.split(",")
    workdir = tempfile.mkdtemp(prefix="callgw-bench-")
    engine = None
    results = []
    try:
        gen = build_generator(workdir)
        if "callgw-wss" in paths and shutil.which("node") is None:
            print("callgw-wss: node (Debian nodejs) not installed, skipped", flush=True)
            paths.remove("callgw-wss")
        if "rtpengine" in paths:
            if Rtpengine.available():
                engine = Rtpengine(workdir)
                engine.start()
            else:
                print("rtpengine: not installed, skipped", flush=True)
                paths.remove("rtpengine")
        print("%-14s %6s %9s %9s %8s %8s %8s %8s %8s %6s %8s %6s" % (
            "path", "calls", "sent", "loss%", "p50us", "p99us", "p999us", "relayCPU",
            "us/pkt", "user", "genCPU", "late"), flush=True)
        failed = set()
        for calls in steps:  # every path at one load before the next load: fair under drift
            for path in paths:
                if path in failed:
                    continue
                r = one_step(path, calls, gen, workdir, opts, engine)
                results.append(r)
                print("%-14s %6d %9d %9.4f %8d %8d %8d %8s %8s %6s %8.2f %6d" % (
                    path, calls, r["sent"], 100 * r["loss"], r["p50_us"], r["p99_us"],
                    r["p999_us"], r["relay_cpu"], r["relay_us_per_packet"],
                    r["relay_user_share"], r["gen_cpu"], r["late_sends"]), flush=True)
                if not held(r, opts):
                    failed.add(path)
            if len(failed) == len(paths):
                break
    finally:
        if engine is not None:
            engine.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print("\nsummary (largest N held: loss < %.2f%% and p99 < %g ms; latency p50/p99 in us)" % (
        100 * opts.max_loss, opts.max_p99_ms))
    for path in paths:
        rows = [r for r in results if r["path"] == path]
        ok = [r["calls"] for r in rows if held(r, opts)]
        at = {r["calls"]: r for r in rows}
        fmt = lambda n: ("%d/%d" % (at[n]["p50_us"], at[n]["p99_us"])) if n in at else "-"
        print("%-14s held %5s   at 100: %-12s at 500: %-12s" % (
            path, max(ok) if ok else 0, fmt(100), fmt(500)))
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
