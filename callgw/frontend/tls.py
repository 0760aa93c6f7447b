"""TLS for callgw's listeners: the configured certificate, or a self-signed one made on first start.

Owned by the front-end listeners. ``CertificateService`` (a child started before the TLS
listeners) loads ``[web] cert``/``key``; when ``cert`` is empty it makes (once) an ECDSA P-256
self-signed certificate for 127.0.0.1, ::1, localhost and the listener addresses, stored next
to the SQLite database (in ``var/`` with PostgreSQL) as ``callgw-cert.pem`` / ``callgw-key.pem`` (key mode 0600), and logs its path
and SHA-256 fingerprint so that clients can be told to trust it (``callgw-dial --cacert``).
``context(alpn=...)`` returns a context factory that listeners can take at construction: the
certificate is read only when the listener starts. ALPN ``h2``/``http/1.1`` is offered on the
web listener (PLATFORM-NOTES: twisted.web speaks HTTP/2 only over TLS with ALPN).

Tests: tests/frontend/test_tls.py.
"""
from __future__ import annotations

import datetime
import fcntl
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.application.service import Service
from twisted.internet import ssl
from twisted.internet.interfaces import IOpenSSLContextFactory
from twisted.logger import Logger
from zope.interface import implementer

from callgw.store.dialect import is_postgresql

CERT_NAME, KEY_NAME = "callgw-cert.pem", "callgw-key.pem"


def make_self_signed(cert_path: str, key_path: str, hosts: list[str], now: float,
                     days: int = 3650) -> None:
    """Write a new self-signed certificate and key for ``hosts`` (IPs or names)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "callgw self-signed")])
    alt: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt.append(x509.DNSName(host))
    start = datetime.datetime.fromtimestamp(now, datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start - datetime.timedelta(days=1))
            .not_valid_after(start + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    # each file appears whole (written aside, then renamed), the key before its certificate:
    # a process that sees the certificate finds its key complete
    fd = os.open(key_path + ".new", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    os.replace(key_path + ".new", key_path)
    with open(cert_path + ".new", "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    os.replace(cert_path + ".new", cert_path)


def fingerprint(cert_pem: bytes) -> str:
    """The SHA-256 fingerprint of a PEM certificate, as ``AB:CD:...``."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    return ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.SHA256()))


@implementer(IOpenSSLContextFactory)
class _LazyContext:
    """An old-style context factory whose certificate is loaded on first use."""

    def __init__(self, service: "CertificateService", alpn: tuple[bytes, ...] | None):
        self.service = service
        self.alpn = alpn
        self._options = None

    def getContext(self):
        if self._options is None:
            self._options = self.service.options(self.alpn)
        return self._options.getContext()


class CertificateService(Service):
    """Provides the server certificate to the TLS listeners; see the module docstring."""

    log = Logger()
    name = "tls-certificate"

    def __init__(self, config, clock):
        web = config["web"]
        self.clock = clock
        self.configured = bool(web["cert"])
        if self.configured:
            self.cert_path, self.key_path = web["cert"], web["key"] or web["cert"]
        else:
            database = config["general"]["database"]
            # next to the SQLite file; with a PostgreSQL URL in var/ of the working directory
            folder = os.path.abspath("var") if is_postgresql(database) else \
                os.path.dirname(os.path.abspath(database))
            self.cert_path = os.path.join(folder, CERT_NAME)
            self.key_path = os.path.join(folder, KEY_NAME)
        self.hosts = ["127.0.0.1", "::1", "localhost"]
        for section, key in (("web", "https"), ("client", "tls")):
            listener = config.listener(section, key)
            if listener is not None and listener.host not in ("0.0.0.0", "::"):
                self.hosts.append(listener.host)
        self.fingerprint: str | None = None

    def startService(self) -> None:
        """Makes the self-signed certificate if needed; raises ``StartupError`` naming the
        setting and the file when the files are missing or unusable."""
        super().startService()
        from callgw.startup import StartupError
        try:
            self.ensure()
            self.options()              # the key and certificate load, and belong together
        except (OSError, ValueError, TypeError) as e:
            what = "[web] cert/key" if self.configured else "self-signed certificate"
            path = getattr(e, "filename", None) or self.cert_path
            raise StartupError(f"{what} {path}: {getattr(e, 'strerror', None) or e}") \
                from None

    def ensure(self) -> None:
        if not self.configured and not (os.path.exists(self.cert_path)
                                        and os.path.exists(self.key_path)):
            os.makedirs(os.path.dirname(self.cert_path), exist_ok=True)
            # processes starting together in one folder (a front end and call servers on one
            # host) make it once: the others wait and use it (no key of one with another's
            # certificate)
            with open(self.cert_path + ".lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                if not (os.path.exists(self.cert_path) and os.path.exists(self.key_path)):
                    make_self_signed(self.cert_path, self.key_path, self.hosts,
                                     self.clock.seconds())
                    self.log.info("made a self-signed certificate: {path}",
                                  path=self.cert_path)
        with open(self.cert_path, "rb") as f:
            self.fingerprint = fingerprint(f.read())
        self.log.info("TLS certificate {path} SHA-256 {fingerprint}", path=self.cert_path,
                      fingerprint=self.fingerprint)

    def options(self, alpn: tuple[bytes, ...] | None = None) -> ssl.CertificateOptions:
        """CertificateOptions for the certificate (``alpn``: protocols offered in order)."""
        if self.fingerprint is None:
            self.ensure()
        with open(self.cert_path, "rb") as f:
            cert_pem = f.read()
        with open(self.key_path, "rb") as f:
            key_pem = f.read()
        kwargs = {"acceptableProtocols": list(alpn)} if alpn else {}
        # cryptography objects: pyOpenSSL deprecates its own X509/PKey in use_certificate.
        return ssl.CertificateOptions(
            privateKey=serialization.load_pem_private_key(key_pem, None),
            certificate=x509.load_pem_x509_certificate(cert_pem), **kwargs)

    def digest(self) -> bytes:
        """SHA-256 of the certificate's DER form (what a peer's TLS stack sees): the
        fingerprint read once at start, not the file again for every cluster link."""
        if self.fingerprint is None:
            self.ensure()
        return bytes.fromhex(self.fingerprint.replace(":", ""))

    def context(self, alpn: tuple[bytes, ...] | None = None) -> _LazyContext:
        """A context factory for ``StreamListener(tls_context=...)``, loaded at listen time."""
        return _LazyContext(self, alpn)
