"""``callgw-dial``: log in, place one call, print each status as it happens, exit with a code.

Owned by the client library (issue 4, "Python client and command line").

    callgw-dial [--server URL] --user NAME [--password PW] [--cacert FILE | --insecure]
                [--duration SECONDS] [--timeout SECONDS] [--play WAV] [--record WAV]
                [--dtmf DIGITS] [--media relay|direct] [--no-media-after SECONDS]
                [--server-name NAME] [--verbose] TARGET

URL is ``udp://HOST:PORT``, ``tcp://HOST:PORT``, ``tls://HOST:PORT``, ``wss://HOST:PORT`` or
``https://HOST:PORT`` (default ``tcp://127.0.0.1:7060``). The password comes from
``--password`` or ``CALLGW_PASSWORD``. TARGET is an E.164 number (``+4930...``) or an
address-book entry. TLS is verified (``--cacert`` for callgw's self-signed certificate) unless
``--insecure`` is given, which prints a warning; ``--server-name`` is the name the certificate
must carry (default: the host of each link, so after a redirect the address it names). After ``connected`` the call is held up for
``--duration`` seconds (default 5), then hung up. ``--play`` sends a mono 16-bit 8 kHz WAV file
as the microphone (relay mode, G.711 as ``connected`` names it); ``--record`` writes what was
heard to a WAV file (``callgw.client.media``). ``--dtmf`` sends the digits (``dtmf``) half a
second after ``connected``; digits the far end sends print as ``status: dtmf D``.
``--media direct`` sends and receives RTP on the client's own port (the gateway's address comes
in ``connected``); when nothing arrived within ``--no-media-after`` seconds it asks callgw to
carry the media (``answer`` with ``mode: relay``), and carries on in relay mode.
A ``redirect`` from the server (a front end sending the client to a call server) is followed
by the library (same kind of link, same TLS settings, the derived key reused, at most three in
a row); ``--verbose`` prints each one as ``redirected to HOST:PORT (text)``. One that cannot be
followed ends with exit code 4 and its reason ("too many redirects: A -> B -> ...").

Exit codes: 0 a normal call (connected, then ended normally); 1 the call failed (busy,
unreachable, no answer...); 2 bad arguments (a target the protocol would refuse, a ``--record``
file that cannot be written: checked before connecting, one line); 3 unauthorized (login or
call refused); 4 no connection (refused -- a UDP server where nothing listens included --, TLS
verification, with the ``--cacert`` hint, timeout, a server-side login failure); 5 protocol
error or no answer in time. Every outcome other than 0 prints its reason in one line. Once
connected, every way out (errors, SIGINT/SIGTERM) sends ``logout`` first.
Tests: tests/client/test_dial.py, tests/client/test_dial_errors.py, tests/client/test_redirect_live.py.
"""
from __future__ import annotations

import argparse
import os
import sys

from twisted.internet import defer, task
from twisted.logger import Logger

from protocols.client import messages as m

DTMF_DELAY = 0.5        # seconds after connected before --dtmf digits go
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNAUTHORIZED, EXIT_CONNECT, EXIT_PROTOCOL = range(6)
log = Logger()


class _Parser(argparse.ArgumentParser):
    """Bad arguments are one line (and exit 2), not the whole usage."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = _Parser(prog="callgw-dial", description="Place one call through callgw.")
    p.add_argument("--server", default="tcp://127.0.0.1:7060",
                   help="udp|tcp|tls|wss|https://HOST:PORT (default %(default)s)")
    p.add_argument("--user", required=True, help="user name")
    p.add_argument("--password", help="password (default: $CALLGW_PASSWORD)")
    tls = p.add_mutually_exclusive_group()
    tls.add_argument("--cacert", help="PEM certificate to trust (e.g. callgw's self-signed one)")
    tls.add_argument("--insecure", action="store_true", help="do not verify TLS (warns)")
    p.add_argument("--server-name", metavar="NAME",
                   help="the name callgw's TLS certificate must carry (default: the host "
                        "connected to, also after a redirect)")
    p.add_argument("--duration", type=float, default=5.0,
                   help="seconds to stay connected before hanging up (default %(default)s)")
    p.add_argument("--timeout", type=float, default=60.0,
                   help="seconds to wait for login and for the call to connect")
    p.add_argument("--play", metavar="WAV", help="mono 16-bit 8 kHz WAV file to send")
    p.add_argument("--record", metavar="WAV", help="write what is heard to this WAV file")
    p.add_argument("--media", choices=("relay", "direct"), default="relay",
                   help="relay: media rides the client protocol through callgw (default); "
                        "direct: RTP between this client and the gateway")
    p.add_argument("--no-media-after", type=float, default=2.0, metavar="SECONDS",
                   help="direct mode: ask callgw to relay when no RTP arrived in this time "
                        "(0: never; default %(default)s)")
    p.add_argument("--reattach", type=float, default=30.0, metavar="SECONDS",
                   help="when the connection to callgw drops mid-call (relayed media), log in "
                        "again and re-attach to the call for up to this long (0: never)")
    p.add_argument("--codec", choices=("PCMU", "PCMA"), default="PCMU",
                   help="the G.711 law this client prefers (callgw converts toward the "
                        "gateway's; default %(default)s)")
    p.add_argument("--dtmf", metavar="DIGITS",
                   help="send these DTMF digits (0-9 * # A-D) once connected")
    p.add_argument("--verbose", "-v", action="store_true",
                   help="also print the protocol's session events (redirects)")
    p.add_argument("target", metavar="TARGET", help="E.164 number (+...) or address-book entry")
    args = p.parse_args(argv)
    args.pcm = None
    if args.play:
        import wave

        from callgw.client.media import read_wav
        try:
            args.pcm = read_wav(args.play)
        except (OSError, EOFError, ValueError, wave.Error) as e:
            p.error(f"--play: {e}")
    if args.password is None:
        args.password = os.environ.get("CALLGW_PASSWORD")
    if not args.password:
        p.error("no password: use --password or set CALLGW_PASSWORD")
    if args.duration < 0 or args.timeout <= 0:
        p.error("--duration must be >= 0 and --timeout > 0")
    if args.dtmf is not None and (not args.dtmf or
                                  any(c not in "0123456789*#ABCD" for c in args.dtmf)):
        p.error(f"--dtmf {args.dtmf!r}: digits are 0-9, *, #, A-D")
    if args.target.startswith("+") and not m.E164_RE.match(args.target):
        p.error(f"{args.target!r} is not an E.164 number (+ then 2-15 digits)")
    problem = target_problem(args.target)
    if problem:
        p.error(f"{args.target!r} is not an E.164 number (+ then 2-15 digits) or an "
                f"address-book entry: {problem}")
    if args.record:
        problem = unwritable(args.record)
        if problem:
            p.error(f"--record {args.record}: {problem}")
    try:
        from callgw.client.links import parse_url
        parse_url(args.server)
    except ValueError as e:
        p.error(str(e))
    return args


def target_problem(target: str) -> str | None:
    """Why the protocol would refuse ``target`` in a ``call`` (None: it would not): the same
    check the library makes when it sends, made before connecting."""
    from protocols.client.errors import LocalProtocolError
    number = target if target.startswith("+") else None
    try:
        m.to_dict(m.Call(call="c1", number=number, contact=None if number else target,
                         mode="relay"))
    except LocalProtocolError as e:
        return str(e).split(": ", 1)[-1]
    return None


def unwritable(path: str) -> str | None:
    """Why ``path`` cannot be written (None: it can), found by opening it for appending; a
    file this check created is removed again."""
    if os.path.isdir(path):
        return "is a folder"
    existed = os.path.exists(path)
    try:
        with open(path, "ab"):
            pass
    except OSError as e:
        return e.strerror or str(e)
    if not existed:
        os.unlink(path)
    return None


def say(text: str) -> None:
    print(text, flush=True)


def _with_timeout(d: defer.Deferred, reactor, seconds: float) -> defer.Deferred:
    return d.addTimeout(seconds, reactor)


def connect_problem(error: Exception, args: argparse.Namespace) -> str:
    """One line for a connection that failed, with what to do about a TLS refusal."""
    text = str(error) or type(error).__name__
    scheme = args.server.split(":", 1)[0]
    if scheme in ("tls", "wss", "https") and ("certificate verify failed" in text or
                                               "CERTIFICATE_VERIFY_FAILED" in text):
        hint = ("give callgw's certificate with --cacert FILE (its path is in callgw's log: "
                "'TLS: self-signed certificate ...'), or --insecure to skip the check"
                if not args.cacert else f"--cacert {args.cacert} is not the certificate "
                "the server presented (or does not name its address)")
        return (f"cannot connect to {args.server}: TLS: the server's certificate is not "
                f"trusted (certificate verify failed); {hint}")
    return f"cannot connect to {args.server}: {text}"


@defer.inlineCallbacks
def _logout(reactor, session) -> defer.Deferred:
    """Log out (every call of the session ends normally at the server), at most 3 s."""
    if session is None or session.is_closed:
        return None
    yield session.logout().addTimeout(3, reactor).addErrback(lambda f: session.close())
    return None


@defer.inlineCallbacks
def dial(reactor, args: argparse.Namespace):
    """Run one call; fires with the exit code. Whatever goes wrong after the connection is up,
    ``logout`` is sent before the end (and on SIGINT/SIGTERM: the reactor's shutdown waits for
    it), so no call is left for callgw to reap."""
    from callgw.client import ConnectError, LoginRefused, SessionLost, connect
    if args.insecure:
        say("warning: --insecure: the server's TLS certificate is not verified")
    try:
        session = yield connect(args.server, reactor, cacert=args.cacert,
                                insecure=args.insecure, server_name=args.server_name,
                                timeout=min(args.timeout, 30.0))
    except (ConnectError, OSError) as e:
        say(f"error: {connect_problem(e, args)}")
        return EXIT_CONNECT
    current = {"session": session}
    trigger = reactor.addSystemEventTrigger("before", "shutdown",
                                            lambda: _logout(reactor, current["session"]))
    try:
        code = yield _session(reactor, session, args, current)
    except Exception as e:                  # a bug of ours: said in one line, still logged out
        say(f"error: {type(e).__name__}: {e}")
        code = EXIT_PROTOCOL
    finally:
        reactor.removeSystemEventTrigger(trigger)
        yield _logout(reactor, current["session"])
    return code


def _trace(session, args) -> None:
    """``--verbose``: say where a redirect sends the session."""
    if args.verbose:
        session.on_redirect = lambda address, port, text: say(
            f"redirected to {_host_port(address, port)}" + (f" ({text})" if text else ""))


def _host_port(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


@defer.inlineCallbacks
def _session(reactor, session, args, current):
    from callgw.client import LoginRefused, SessionLost
    _trace(session, args)
    try:
        welcome = yield _with_timeout(session.login(args.user, args.password), reactor,
                                      args.timeout)
    except LoginRefused as e:
        if e.code >= 500:                  # the server failed (e.g. its database): not a refusal
            say(f"error: login failed: {e.text} (server error {e.code})")
            return EXIT_CONNECT
        retry = f" (retry in {e.retry} s)" if e.retry else ""
        say(f"unauthorized: {e.code} {e.text}{retry}")
        return EXIT_UNAUTHORIZED
    except defer.TimeoutError:
        say(f"error: login failed: no answer from {args.server} within {args.timeout:g} s "
            "(--timeout)")
        return EXIT_PROTOCOL
    except SessionLost as e:
        say(f"error: login failed: {e or 'the connection ended'}")
        return EXIT_CONNECT
    except ValueError as e:
        say(f"error: login failed: {e}")
        return EXIT_PROTOCOL
    say(f"logged in as {welcome.user} (seen from {welcome.address}:{welcome.port})")
    code = yield _call(reactor, session, args, current)
    return code


@defer.inlineCallbacks
def _reattach(reactor, args, token: str, key: bytes, until: float):
    """Log in again with ``token`` and attach to the call with ``key`` (docs/protocol.md,
    "Re-attach after a lost session"), trying until ``until``; fires with (session, call) or
    None."""
    from callgw.client import ConnectError, LoginRefused, SessionLost, connect
    while reactor.seconds() < until:
        session = None
        try:
            session = yield connect(args.server, reactor, cacert=args.cacert,
                                    insecure=args.insecure, server_name=args.server_name,
                                    timeout=5.0)
            _trace(session, args)
            yield _with_timeout(session.login_token(token), reactor, 10.0)
        except LoginRefused as e:
            say(f"re-attach: login refused: {e.code} {e.text}")
            if session is not None:
                session.close()
            return None
        except (ConnectError, OSError, SessionLost, defer.TimeoutError) as e:
            if session is not None:
                session.close()
            say(f"re-attach: {e or 'no answer'}; trying again")
            yield task.deferLater(reactor, 1.0, lambda: None)
            continue
        call = session.attach(key)
        yield defer.DeferredList([call.connected, call.disconnected], fireOnOneCallback=True)
        if call.connected.called:
            return session, call
        say("re-attach: callgw no longer has the call")
        yield session.logout().addTimeout(5, reactor).addErrback(lambda f: session.close())
        return None
    return None


def _session_lost(end: m.Message, session) -> bool:
    return isinstance(end, m.Disconnected) and end.cause == "network-error" and \
        session.is_closed


@defer.inlineCallbacks
def _call(reactor, session, args, current):
    from callgw.client.media import MediaPlayer, MediaRecorder
    number = args.target if args.target.startswith("+") else None
    direct = _direct_media(reactor, session, args) if args.media == "direct" else None
    codecs = (args.codec, "PCMA" if args.codec == "PCMU" else "PCMU")
    call = session.call(number=number, contact=None if number else args.target,
                        mode=args.media, address=direct and direct.address,
                        port=direct and direct.port, codecs=codecs)
    started = {}
    state = {"player": None}

    def play(codec, pcm, key):
        if pcm and key is not None:
            state["player"] = MediaPlayer(session, call, pcm, reactor, codec)
            state["player"].start()

    def show(message: m.Message) -> None:
        if isinstance(message, m.Trying):
            say(f"trying (call {message.call})")
        elif isinstance(message, m.Ringing):
            say("ringing")
        elif isinstance(message, m.Connected) and "at" in started:
            if direct is not None and message.key is not None:      # moved to the relay
                direct.rtp.stop()
                say("media relayed by callgw")
                reactor.callLater(0, play, message.codec,          # once call.key is set
                                  (args.pcm or b"")[direct.rtp.offset:], message.key)
        elif isinstance(message, m.Connected):
            started["at"] = reactor.seconds()
            say("connected")
        elif isinstance(message, m.Status):
            say(f"status: {message.info}{' ' + message.text if message.text else ''}")
    call.on_event = show
    recorder = MediaRecorder(call) if args.record else None
    if recorder is not None:
        session.on_media = recorder.receive
    def give_up():
        if not started and not call.ended:
            say(f"no answer within {args.timeout:g} s (--timeout): hanging up")
            call.hangup()
    guard = reactor.callLater(args.timeout, give_up)
    try:
        yield defer.DeferredList([call.connected, call.disconnected], fireOnOneCallback=True)
    finally:
        if guard.active():
            guard.cancel()
    hang = None
    live = {"call": call}
    if call.connected.called and not call.disconnected.called:
        hang = reactor.callLater(args.duration, lambda: live["call"].hangup())
        if args.dtmf:
            reactor.callLater(min(DTMF_DELAY, args.duration / 2), _send_dtmf, call, args.dtmf)
        connected = next(e for e in call.events if isinstance(e, m.Connected))
        if direct is not None and connected.address and connected.port:
            say(f"direct media with {connected.address}:{connected.port}")
            direct.rtp.start(connected.address, connected.port)
            if args.no_media_after:
                reactor.callLater(args.no_media_after, _check_direct, call, direct)
        elif args.pcm is not None:
            play(connected.codec, args.pcm, call.key)
    end = yield call.disconnected
    until = reactor.seconds() + args.reattach
    while args.reattach > 0 and "at" in started and call.key is not None and \
            _session_lost(end, session) and reactor.seconds() < until:
        say("session lost: re-attaching to the call")
        if state["player"] is not None:
            state["player"].waiting = True
        attached = yield _reattach(reactor, args, session.token, call.key, until)
        if attached is None:
            break
        session, call = attached
        current["session"], live["call"] = session, call
        say("re-attached")
        call.on_event = show
        if recorder is not None:
            recorder.call = call
            session.on_media = recorder.receive
        if state["player"] is not None:
            state["player"].follow(session, call)
        end = yield call.disconnected
    if hang is not None and hang.active():
        hang.cancel()
    player = state["player"]
    if player is not None:
        player.stop()
    if direct is not None:
        direct.rtp.stop()
        say(f"direct RTP: sent {direct.rtp.sent}, received {direct.rtp.received} packets")
        direct.listening.stopListening()
    if args.pcm is not None:
        sent = (player.sent if player else 0) + (direct.rtp.sent if direct else 0)
        say(f"played {sent * 0.02:.1f} s of {args.play}")
    if recorder is not None:
        if direct is not None:
            recorder.chunks[:0] = direct.rtp.chunks
        say(f"recorded {recorder.write(args.record):.1f} s to {args.record} "
            f"({recorder.frames} frames heard, {recorder.missing} missing)")
    if "at" in started:
        say(f"duration {reactor.seconds() - started['at']:.1f} s")
    return _outcome(end, "at" in started)


class _Direct:
    """The client's RTP port in direct mode and what the call request says about it."""

    def __init__(self, rtp, listening, address: str):
        self.rtp, self.listening, self.address = rtp, listening, address
        self.port = listening.getHost().port


def _direct_media(reactor, session, args) -> _Direct:
    """Bind the client's RTP port (where callgw saw us, else every address)."""
    from twisted.internet.error import CannotListenError

    from callgw.client.media import DirectMedia
    rtp = DirectMedia(args.pcm, reactor)
    seen = session.welcome.address if session.welcome is not None else "0.0.0.0"
    try:
        listening = reactor.listenUDP(0, rtp, interface=seen)
    except CannotListenError:
        listening = reactor.listenUDP(0, rtp)
    return _Direct(rtp, listening, seen)


def _check_direct(call, direct: _Direct) -> None:
    if not call.ended and call.key is None and direct.rtp.received == 0:
        say("no media arrived in direct mode: asking callgw to relay it")
        call.relay()


def _send_dtmf(call, digits: str) -> None:
    if not call.ended:
        call.dtmf(digits)
        say(f"sent dtmf {digits}")


def _outcome(end: m.Message, was_connected: bool) -> int:
    text = f" ({end.text})" if getattr(end, "text", None) else ""
    if isinstance(end, m.Unauthorized):
        say(f"unauthorized: {end.code}{text}")
        return EXIT_UNAUTHORIZED
    if isinstance(end, m.Error):
        say(f"error: {end.code}{text}")
        return EXIT_PROTOCOL
    say(f"disconnected: {end.cause}{text}")
    if was_connected and end.cause == "normal":
        return EXIT_OK
    return EXIT_FAILED


def main(argv: list[str] | None = None) -> None:
    """The ``callgw-dial`` console script."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from twisted.internet import reactor
    result = {"code": EXIT_PROTOCOL}

    def done(code):
        result["code"] = code

    def failed(failure):                    # a bug of ours: one line, not a traceback
        say(f"error: {failure.type.__name__}: {failure.getErrorMessage()}")

    def start():
        d = dial(reactor, args)
        d.addCallback(done)
        d.addErrback(failed)
        d.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(start)
    reactor.run()
    sys.exit(result["code"])


if __name__ == "__main__":
    main()
