"""Front end + call servers + director + handler with fake connections and fake slave legs."""
from __future__ import annotations

from twisted.internet.task import Clock

from callgw.callserver import events as ev
from callgw.callserver.branding import BrandingUnit
from callgw.callserver.director import CallDirector
from callgw.callserver.handler import Timers
from callgw.callserver.logger import CallLogger
from callgw.callserver.metrics import CallMetrics
from callgw.callserver.server import CallServer
from tests.callpath.fakes import AddressOnlyMediaSession, PortPool
from callgw.frontend.balancer import Balancer
from callgw.frontend.server import FrontEnd
from callgw.proxy.gateways import GatewayDirectory
from callgw.proxy.registrar import Registrar
from protocols.client import messages as m
from tests.callpath.fakes import FakeConn, SlaveFactory, SyncStore


def build(n_servers=2, scripts=None, capacity=100):
    clock = Clock()
    clock.advance(1_790_000_000)
    store = SyncStore()
    db = store.db
    db.ensure_default_tenant(0)
    for name in ("alice", "bob", "carol"):
        db.add_user(name, "x", 0, number="+1555000" + str(len(name)))
    db.add_gateway("gw1", "sip", "127.0.0.1", 5060, ["+1"], 0)
    db.add_gateway("gw2", "sip", "127.0.0.1", 5061, ["+1"], 0, priority=20)
    metrics = CallMetrics()
    logger = CallLogger(store, clock, "n1", metrics=metrics)
    directory = GatewayDirectory(store)
    directory.reload()
    director = CallDirector(store, clock)
    slaves = SlaveFactory(scripts)
    pool = PortPool("127.0.0.1", 30000, 30100)
    servers = [CallServer(f"cs{i}", director, directory, logger, clock, {"sip": slaves},
                          Timers(2, 10, 3), lambda cid: AddressOnlyMediaSession(pool),
                          capacity=capacity) for i in range(1, n_servers + 1)]
    registrar = Registrar(store, clock, "n1")
    fe = FrontEnd(Balancer(servers), clock, logger, registrar, BrandingUnit(), store,
                  metrics=metrics)
    return fe, servers, slaves, store, clock, logger


def conn_for(store, name):
    return FakeConn(name, store.db.get_user(name), store.db.get_tenant("default"))


def call(number="+12125551234", cid="c1", **kw):
    return m.Call(call=cid, number=number, mode="relay", **kw)


def test_welcome_branding_and_registration():
    fe, servers, slaves, store, clock, logger = build()
    conn = conn_for(store, "alice")
    extra = fe.session_opened(conn)
    assert extra["branding"]["display_name"] == "callgw"
    assert fe.registrar.lookup("alice")[0]["contact"] == "udp:127.0.0.1:40000"
    fe.session_closed(conn, "logout")
    assert fe.registrar.lookup("alice") == []


def test_call_answered_and_hung_up_by_client():
    fe, servers, slaves, store, clock, logger = build(
        scripts={"gw1": {"Setup": (ev.Proceeding(), ev.Alerting(), ev.Connect())}})
    conn = conn_for(store, "alice")
    fe.session_opened(conn)
    fe.client_message(conn, call())
    assert conn.commands() == ["trying", "ringing", "connected"]
    assert conn.sent[-1].key is not None
    assert slaves.legs[0].sent[0].caller == "+15550005"
    assert slaves.legs[0].sent[0].media.port == 30000
    fe.client_message(conn, m.Hangup(call="c1"))
    assert conn.sent[-1].command == "disconnected" and conn.sent[-1].cause == "normal"
    assert slaves.legs[0].kinds() == ["Setup", "Release"]
    logger.flush()
    cdr = store.db.cdrs()[0]
    assert cdr["username"] == "alice" and cdr["gateway"] == "gw1" and cdr["cause"] == 16
    assert cdr["call_server"] in ("cs1", "cs2")
    assert sum(s.active for s in servers) == 0


def test_refused_destination_never_reaches_gateway():
    fe, servers, slaves, store, clock, logger = build()
    conn = conn_for(store, "alice")
    fe.client_message(conn, call("+19005551234"))
    assert conn.commands() == ["unauthorized"]
    assert conn.sent[0].code == 411 and conn.sent[0].call == "c1"
    assert slaves.legs == []
    logger.flush()
    events = store.db.conn.execute("SELECT kind, data FROM call_events").fetchall()
    assert events[0][0] == "refused" and "blocked" in events[0][1]


def test_address_book_target():
    fe, servers, slaves, store, clock, logger = build(
        scripts={"gw1": {"Setup": (ev.Alerting(),)}})
    store.db.book_add("alice", "mum", "+12125559876")
    fe.director = servers[0].director
    servers[0].director.invalidate()
    conn = conn_for(store, "alice")
    fe.client_message(conn, m.Call(call="c1", contact="mum", mode="relay"))
    assert slaves.legs[0].sent[0].target == "+12125559876"


def test_full_pool_gets_congestion():
    fe, servers, slaves, store, clock, logger = build(n_servers=1, capacity=1,
                                                      scripts={"gw1": {"Setup": (ev.Alerting(),)}})
    conn = conn_for(store, "alice")
    fe.client_message(conn, call(cid="c1"))
    fe.client_message(conn, call(cid="c2"))
    assert conn.sent[-1].command == "disconnected" and conn.sent[-1].cause == "congestion"


def test_a_lagging_reactor_refuses_new_calls_with_congestion_before_any_gateway(monkeypatch):
    """Admission control (callgw/callserver/admission.py): while the reactor runs its timers
    400 ms late (a Clock advanced past the probe) with ``min_limit`` set-ups of ours in flight
    and the process busy (its CPU clock is the Clock), a new call is refused at once with cause
    congestion and the reason in its event; calls up stay up; once the lag goes, calls are
    taken again."""
    from callgw.callserver import admission
    fe, servers, slaves, store, clock, logger = build(n_servers=1,
                                                      scripts={"gw1": {"Setup": (ev.Alerting(),)}})
    monkeypatch.setattr(admission, "process_time", clock.seconds)
    monkeypatch.setattr(admission, "monotonic", clock.seconds)
    for kind, value in (("allow", "+"), ("max_concurrent", "100")):
        store.db.add_rule(kind, value, 0, username="alice")
    alice, bob = conn_for(store, "alice"), conn_for(store, "bob")
    ringing = servers[0].admission.min_limit
    for i in range(ringing):                        # ringing: set-ups still in flight
        fe.client_message(alice, call(cid=f"c1-{i}"))
    assert alice.commands().count("trying") == ringing and "disconnected" not in \
        alice.commands()
    assert servers[0].admission.in_flight == ringing
    for _ in range(20):
        clock.advance(servers[0].admission.interval + 0.4)
    legs, active = len(slaves.legs), servers[0].active
    assert servers[0].admission.in_flight >= ringing
    fe.client_message(bob, call(cid="c2"))
    assert bob.commands() == ["disconnected"] and bob.sent[-1].cause == "congestion"
    assert len(slaves.legs) == legs and servers[0].active == active      # no gateway saw it
    logger.flush()
    reasons = [row[0] for row in store.db.conn.execute(
        "SELECT data FROM call_events WHERE kind = 'rejected'").fetchall()]
    assert len(reasons) == 1 and "congestion: call set-ups over the measured load" in reasons[0]
    for _ in range(40):
        clock.advance(servers[0].admission.interval)
    fe.client_message(bob, call(cid="c3"))
    assert bob.commands()[-1] == "trying" and len(slaves.legs) > legs     # taken again
    servers[0].stop_calls()


def test_session_closed_releases_calls():
    fe, servers, slaves, store, clock, logger = build(
        scripts={"gw1": {"Setup": (ev.Connect(),)}})
    conn = conn_for(store, "alice")
    fe.session_opened(conn)
    fe.client_message(conn, call())
    fe.session_closed(conn, "too many errors")
    assert slaves.legs[0].sent[-1].cause == 41
    logger.flush()
    assert store.db.cdrs()[0]["cause_text"] == "client vanished: too many errors"


def _lost_call(reason="connection lost"):
    fe, servers, slaves, store, clock, logger = build(
        scripts={"gw1": {"Setup": (ev.Connect(),)}})
    conn = conn_for(store, "alice")
    fe.session_opened(conn)
    fe.client_message(conn, call())
    key = conn.sent[-1].key
    conn.closed = True
    fe.session_closed(conn, reason)
    return fe, slaves, store, clock, logger, key


def test_a_lost_session_keeps_its_call_until_the_grace_period_ends():
    fe, slaves, store, clock, logger, key = _lost_call("idle timeout")
    clock.advance(29)
    assert slaves.legs[0].kinds() == ["Setup"]              # the gateway side stays up
    assert servers_active(fe) == 1 and logger.reap() is None and servers_active(fe) == 1
    clock.advance(1)
    assert slaves.legs[0].sent[-1] == ev.Release(38, "client did not come back within 30 s")
    logger.flush()
    cdr = store.db.cdrs()[0]
    assert cdr["cause"] == 38 and "did not come back" in cdr["cause_text"]


def servers_active(fe):
    return sum(s.active for s in fe.balancer.servers)


def test_attach_with_the_calls_key_takes_the_call_back_with_a_new_key():
    fe, slaves, store, clock, logger, key = _lost_call()
    clock.advance(10)
    other = conn_for(store, "bob")
    fe.session_opened(other)
    fe.client_message(other, m.Attach(call="c1", key=key))     # another user: refused
    assert other.sent[-1] == m.Disconnected(call="c1", cause="network-error",
                                            text="no call to attach")
    back = conn_for(store, "alice")
    fe.session_opened(back)
    fe.client_message(back, m.Attach(call="c7", key=bytes(16)))  # a wrong key: refused
    assert back.sent[-1].command == "disconnected"
    fe.client_message(back, m.Attach(call="c7", key=key))
    connected = back.sent[-1]
    assert connected.command == "connected" and connected.call == "c7"
    assert connected.key is not None and connected.key != key
    clock.advance(60)                                          # past the grace: still up
    assert slaves.legs[0].kinds() == ["Setup"]
    fe.client_message(back, m.Hangup(call="c7"))
    assert slaves.legs[0].sent[-1] == ev.Release(16, "client hung up")


def test_unknown_call_and_duplicate_id():
    fe, servers, slaves, store, clock, logger = build(
        scripts={"gw1": {"Setup": (ev.Alerting(),)}})
    conn = conn_for(store, "alice")
    fe.client_message(conn, m.Hangup(call="nope"))
    assert conn.sent[-1].command == "error" and conn.sent[-1].code == 302
    fe.client_message(conn, call())
    fe.client_message(conn, call())
    assert conn.sent[-1].code == 303


def test_calls_balanced_over_two_servers_and_stop_calls():
    fe, servers, slaves, store, clock, logger = build(
        scripts={"gw1": {"Setup": (ev.Alerting(), ev.Connect())}})
    conns = [conn_for(store, n) for n in ("alice", "bob", "carol")]
    for i in range(12):
        fe.client_message(conns[i % 3], call(cid=f"c{i}"))
    assert [s.active for s in servers] == [6, 6]
    for s in servers:
        s.stop_calls()
    assert all(c.sent[-1].command == "disconnected" for c in conns)
    logger.flush()
    assert len(store.db.cdrs()) == 12
