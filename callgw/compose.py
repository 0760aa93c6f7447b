"""The composition root: the one place that builds callgw's service graph from its configuration.

Owned by operations (docs/architecture.md, "The composition root"). ``build(root, config,
reactor)`` makes every part, hands each the parts it uses through its constructor, and adds the
services to ``root`` (the ``GatewayService``) in start order:

    json-log -> store -> manhole -> callpath (logger, registrar, front end, health) -> client
    (UDP/TCP/TLS listeners and the HTTPS site, with /api and /metrics mounted on it)

The role (``[cluster] role``, ``twistd callgw --role``) decides what is built: ``all`` (one
process: everything above), ``callserver`` (the same, and a ``ClusterMember`` that joins the
cluster once the listeners are bound), ``frontend`` (the store, client listeners whose logged-in
sessions are redirected to a call server, and the ``ClusterPool`` that knows them; no call
path).

The native protocols come from the static registry (``callgw.callserver.legs.registry``): one
``ILegProvider`` per entry, built by the entry from the configuration. Nothing else in callgw
builds a part of another owner, imports a part to see whether it exists, or writes into another
part's namespace. Tests that need a different front end pass it as ``frontend``.

Tests: tests/test_service.py, tests/test_plugin.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from callgw.callserver.branding import BrandingUnit
from callgw.callserver.director import CallDirector
from callgw.callserver.handler import Timers
from callgw.callserver.legs.echo import EchoLegProvider
from callgw.callserver.legs.registry import PROTOCOLS
from callgw.callserver.logger import CallLogger
from callgw.callserver.media import CallMedia
from callgw.callserver.metrics import CallMetrics
from callgw.callserver.server import CallPathService
from callgw.cluster.frontend import RedirectingFrontEnd
from callgw.cluster.member import ClusterMember
from callgw.cluster.pool import ClusterPool
from callgw.config import Config
from callgw.frontend.balancer import Balancer
from callgw.frontend.clientservice import ClientService
from callgw.frontend.server import FrontEnd
from callgw.logservice import JsonLogService
from callgw.manhole import make_manhole
from callgw.media.rtpengine import Rtpengine, parse_address
from callgw.proxy.gateways import GatewayDirectory
from callgw.proxy.health import HealthPoller
from callgw.proxy.registrar import Registrar
from callgw.store.threaded import ThreadedStore
from callgw.web.api import make_api


@dataclass
class Parts:
    """What ``build`` made, for the ``GatewayService`` that holds it (and the manhole)."""
    store: ThreadedStore
    callpath: CallPathService | None        # None in the role frontend
    client: ClientService
    providers: dict = field(default_factory=dict)
    cluster: object = None                  # ClusterMember (callserver), ClusterPool (frontend)

    @property
    def web(self):
        return self.client.web


def build(root, config: Config, reactor, frontend=None) -> Parts:
    """Build every part for ``config`` and add the services to ``root`` in start order.

    ``frontend`` (an ``IFrontEnd``) replaces the call path's front end for the client
    listeners (tests of the listeners alone)."""
    general, calls = config["general"], config["calls"]
    node = general["node"]
    role = config["cluster"]["role"]
    if general["log_json"]:
        JsonLogService(general["log_json"]).setServiceParent(root)
    store = ThreadedStore(general["database"], reactor, reload_interval=general["reload_interval"])
    store.setServiceParent(root)
    namespace = {"gateway": root, "config": config, "store": store}
    manhole = make_manhole(config, namespace, reactor)
    if manhole is not None:
        manhole.setServiceParent(root)

    metrics = CallMetrics()
    if role == "frontend":
        return _front_end_role(root, config, reactor, store, metrics, namespace)
    logger = CallLogger(store, reactor, node, metrics=metrics)
    providers = {name: entry.build(config, reactor) for name, entry in PROTOCOLS.items()}
    echo_number = calls["echo_number"] or None
    if echo_number:                 # callgw answers this number itself (legs/echo.py)
        providers["echo"] = EchoLegProvider(reactor, echo_number, config["media"]["address"])
    directory = GatewayDirectory(store, protocols=frozenset(providers),
                                 capacity=lambda row: providers[row["protocol"]].capacity(row)
                                 if row["protocol"] in providers else None)
    registrar = Registrar(store, reactor, node)
    branding = BrandingUnit()
    director = CallDirector(store, reactor, calls["max_duration"], shared=store.shared,
                            node=node)
    anchor = None                   # [media] backend: who carries direct-mode calls' media
    if config["media"]["backend"] == "rtpengine":
        anchor = Rtpengine(reactor, parse_address(config["media"]["rtpengine"]),
                           inactivity_timeout=float(config["media"]["inactivity_timeout"]))
    media = CallMedia(reactor, config["media"], anchor=anchor)  # opens nothing until a call
    balancer = Balancer([], calls["balancer"])
    front = FrontEnd(balancer, reactor, logger, registrar, branding, store, node,
                     registration_ttl=2 * config["client"]["idle_timeout"], metrics=metrics,
                     media=media, reattach_grace=config["client"]["reattach_grace"],
                     locate=(lambda user, digest: store.run("locate_call", user, digest))
                     if role == "callserver" else None)
    health = None
    if calls["health_interval"] > 0:
        health = HealthPoller(directory, {n: p.ping for n, p in providers.items()}, reactor,
                              store, interval=calls["health_interval"])
    timers = Timers(calls["setup_timeout"], calls["no_answer_timeout"], calls["max_attempts"])
    callpath = CallPathService(store, reactor, node, timers, logger=logger, directory=directory,
                               director=director, branding=branding, registrar=registrar,
                               media=media, balancer=balancer, frontend=front,
                               providers=providers, metrics=metrics, health=health,
                               echo_number=echo_number, publish=role == "all")
    callpath.setServiceParent(root)

    client = ClientService(config, store, frontend if frontend is not None else front, reactor,
                           metrics=metrics)
    client.setServiceParent(root)
    if client.web is not None:
        client.web.add_resource("api", client.web.admin_only(
            make_api(callpath, cluster=role == "callserver")))
        client.web.add_resource("metrics", client.web.admin_only(metrics.resource(), bearer=True))
    cluster = None
    if role == "callserver":        # joins the cluster once its listeners are bound
        cluster = ClusterMember(config, store, callpath, client, reactor)
        cluster.setServiceParent(root)
    namespace.update(callpath=callpath, client=client, cluster=cluster)
    return Parts(store, callpath, client, providers, cluster)


def _front_end_role(root, config: Config, reactor, store, metrics, namespace) -> Parts:
    """The role ``frontend``: client listeners whose sessions, once logged in, are sent to a
    call server (callgw/cluster/frontend.py) chosen from the cluster (callgw/cluster/pool.py).
    No call path, no native protocol, no /api (the call servers serve it)."""
    balancer = Balancer([], config["calls"]["balancer"])
    client = ClientService(config, store, RedirectingFrontEnd(balancer, metrics), reactor,
                           metrics=metrics)
    # the call page it serves may follow a redirect to a call server's wss:// listener
    pool = ClusterPool(config, store, balancer, reactor,
                       allow_connect=client.web.allow_connect if client.web is not None else None)
    pool.setServiceParent(root)
    client.setServiceParent(root)
    if client.web is not None:
        client.web.add_resource("metrics", client.web.admin_only(metrics.resource(), bearer=True))
    namespace.update(client=client, cluster=pool)
    return Parts(store, None, client, {}, pool)
