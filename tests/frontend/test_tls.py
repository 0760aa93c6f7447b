"""TLS: the self-signed certificate made on first start (path and fingerprint logged, reused
on the next start), clients verify it with the CA file, refuse without it unless insecure."""
from __future__ import annotations

import os

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.logger import globalLogPublisher

from callgw.client import ConnectError, connect
from callgw.frontend.tls import CertificateService, fingerprint
from protocols.client import messages as m
from tests.frontend.gateway import (PASSWORD, FakeFrontEnd, cert_path, start_gateway,
                                   stop_gateway, url)
from tests.helpers import make_config


class _Clock:
    def seconds(self):
        return 1_800_000_000.0


def test_certificate_made_once_logged_and_kept(tmp_path):
    events = []
    globalLogPublisher.addObserver(events.append)
    try:
        service = CertificateService(make_config(tmp_path), _Clock())
        service.startService()
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert service.cert_path == str(tmp_path / "callgw-cert.pem")
    assert oct(os.stat(service.key_path).st_mode & 0o777) == "0o600"
    with open(service.cert_path, "rb") as f:
        fp = fingerprint(f.read())
    assert service.fingerprint == fp and len(fp) == 95
    logged = [e for e in events if e.get("fingerprint") == fp]
    assert logged and logged[0]["path"] == service.cert_path
    again = CertificateService(make_config(tmp_path), _Clock())
    again.startService()
    assert again.fingerprint == fp                      # not remade


def test_configured_certificate_is_used(tmp_path):
    made = CertificateService(make_config(tmp_path), _Clock())
    made.startService()
    cfg = make_config(tmp_path / "other", web={"cert": made.cert_path, "key": made.key_path})
    service = CertificateService(cfg, _Clock())
    service.startService()
    assert service.fingerprint == made.fingerprint
    assert not (tmp_path / "other" / "callgw-cert.pem").exists()
    assert service.options((b"h2",)).getContext() is not None


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("scheme", ["tls", "wss", "https"])
def test_client_verifies_refuses_or_is_told_not_to(tmp_path, scheme, expect_logged_failure):
    if scheme == "wss":     # autobahn logs the refused handshake itself, besides ConnectError
        expect_logged_failure(match="SSL error: certificate verify failed")
    gw = yield start_gateway(tmp_path, FakeFrontEnd())
    try:
        with pytest.raises(ConnectError):
            session = yield connect(url(gw, scheme), reactor, timeout=10)
            yield session.login("alice", PASSWORD)
        session = yield connect(url(gw, scheme), reactor, insecure=True, timeout=10)
        yield session.login("alice", PASSWORD)
        session.close()
        session = yield connect(url(gw, scheme), reactor, cacert=cert_path(gw), timeout=10)
        assert (yield session.ping()) == m.Pong()
        session.close()
    finally:
        yield stop_gateway(gw)


@pytest_twisted.inlineCallbacks
def test_no_certificate_without_tls_listeners(tmp_path):
    gw = yield start_gateway(tmp_path, FakeFrontEnd(), client={"tls": "off"},
                             web={"https": "off"})
    try:
        assert set(gw.client.listeners) == {"udp", "tcp"} and gw.web is None
        assert not (tmp_path / "callgw-cert.pem").exists()
        session = yield connect(url(gw, "tcp"), reactor)
        yield session.login("alice", PASSWORD)
        session.close()
    finally:
        yield stop_gateway(gw)


def test_with_a_postgresql_url_the_self_signed_files_go_to_var_not_to_a_folder_named_after_the_url(
        tmp_path, monkeypatch):
    from tests.helpers import make_config
    monkeypatch.chdir(tmp_path)
    config = make_config(tmp_path, general={"database": "postgresql://u:pw@127.0.0.1:1/db"})
    service = CertificateService(config, reactor)
    assert service.cert_path == str(tmp_path / "var" / "callgw-cert.pem")
    assert service.key_path == str(tmp_path / "var" / "callgw-key.pem")
