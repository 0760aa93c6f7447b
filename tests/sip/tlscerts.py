"""Throwaway certificates for SIP over TLS tests: a CA and a gateway certificate it signs.

``make(tmp_path)`` writes ``ca.pem`` (the CA), ``gw.pem`` (the gateway's certificate and key in
one PEM, as baresip's ``sip_certificate`` wants) for ``IP:127.0.0.1`` and ``DNS:localhost``,
and ``other_ca.pem`` (a CA that signed nothing here) and returns their paths. Made with
``cryptography`` (installed with pyOpenSSL for twisted[tls]); valid for one day.
Used by tests/sip/test_baresip_tls.py and tests/sip/test_transports.py.
"""
from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass
class Certs:
    ca: Path
    gateway: Path
    other_ca: Path


def _name(text):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def _ca(name):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def _pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def make(directory):
    """Write the CA, the gateway certificate (with key) and an unrelated CA in ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca = _ca("callgw test CA")
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name("localhost")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
                critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    out = Certs(directory / "ca.pem", directory / "gw.pem", directory / "other_ca.pem")
    out.ca.write_bytes(_pem(ca))
    out.gateway.write_bytes(_pem(cert) + key_pem)
    out.other_ca.write_bytes(_pem(_ca("some other CA")[1]))
    return out
