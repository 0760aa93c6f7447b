"""callgw's configuration: one TOML file, every setting with a default, checked at start-up.

Owned by the foundation. ``load(path)`` reads a file with stdlib ``tomllib`` and returns a
``Config``; an unknown key or a bad value raises ``ConfigError`` with one line naming the key and
the problem. ``dump(config, redact=False)`` writes the effective configuration back as TOML that
``load`` accepts unchanged. Listeners are one setting each, ``"HOST:PORT"`` (``"[::1]:PORT"`` for
IPv6) or ``"off"``, and default to 127.0.0.1. A relative SQLite ``database`` path is made
absolute when loaded -- against the config file's folder, or for the built-in default against
``home()`` -- so the gateway and the admin CLI open the same file wherever they are run from.

Tests: tests/test_config.py, tests/test_default_paths.py.
"""
from __future__ import annotations

import copy
import ipaddress
import math
import os
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable


class ConfigError(ValueError):
    """A configuration problem; ``str()`` is one line naming the key."""


@dataclass(frozen=True)
class Listener:
    """Where one listener binds; ``port`` 0 lets the OS pick."""
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def endpoint(self, kind: str) -> str:
        """A Twisted endpoint description: ``kind`` is ``tcp`` or ``udp`` (or ``ssl`` prefix)."""
        host = self.host.replace(":", r"\:")
        return f"{kind}:{self.port}:interface={host}"


def parse_listener(text: str) -> Listener | None:
    """Parse ``HOST:PORT``, ``[V6]:PORT`` or ``off``; raise ValueError saying what is wrong."""
    if not isinstance(text, str):
        raise ValueError("expected a string \"HOST:PORT\" or \"off\"")
    if text.strip().lower() in ("off", ""):
        return None
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    else:
        host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"expected HOST:PORT or \"off\", got {text!r}")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{host!r} is not an IP address") from None
    if not 0 <= int(port) <= 65535:
        raise ValueError(f"port {port} out of range 0-65535")
    return Listener(host, int(port))


def _listener(value: Any) -> Any:
    parse_listener(value)
    return value


def _number(low: float, high: float, kind: type = float) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"expected a number, got {value!r}")
        if kind is int and not isinstance(value, int):
            raise ValueError(f"expected a whole number, got {value!r}")
        if not (low <= value <= high) or (isinstance(value, float) and math.isnan(value)):
            raise ValueError(f"{value!r} is out of range {low}-{high}")
        return kind(value)
    return check


def _string(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    return value


def _choice(*options: str) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if value not in options:
            raise ValueError(f"expected one of {', '.join(options)}; got {value!r}")
        return value
    return check


def _string_list(value: Any) -> Any:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"expected a list of strings, got {value!r}")
    return list(value)


def _networks(value: Any) -> Any:
    for entry in _string_list(value):
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or network") from None
    return list(value)


def _user_agent(value: Any) -> Any:
    text = _string(value)
    if not text.strip() or any(not 0x20 <= ord(c) <= 0x7E for c in text):
        raise ValueError(f"expected printable ASCII, e.g. \"callgw\", got {value!r}")
    return text


def _port_range(value: Any) -> Any:
    low, sep, high = _string(value).partition("-")
    if not sep or not low.isdigit() or not high.isdigit():
        raise ValueError(f"expected \"LOW-HIGH\", got {value!r}")
    lo, hi = int(low), int(high)
    if not (1024 <= lo < hi <= 65535) or lo % 2 or not hi % 2:
        raise ValueError(f"{value!r}: need 1024 <= LOW < HIGH <= 65535, LOW even, HIGH odd")
    return value


def _hostport(value: Any) -> Any:
    from callgw.media.rtpengine import parse_address
    parse_address(_string(value))
    return value


def _address_or_empty(value: Any) -> Any:
    if _string(value):
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address (a client is redirected to an "
                             "address, not a name)") from None
    return value


def _echo_number(value: Any) -> Any:
    if _string(value):
        from callgw.numbers import NumberError, check
        try:
            check(value)
        except NumberError as e:
            raise ValueError(str(e)) from None
    return value


def _bool(value: Any) -> Any:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


# section -> key -> (default, check, secret, comment)
SCHEMA: dict[str, dict[str, tuple[Any, Callable[[Any], Any], bool, str]]] = {
    "general": {
        "database": ("var/callgw.sqlite3", _string, False, "SQLite file (embedded default)"),
        "node": ("callgw-1", _string, False, "this process's name in call records"),
        "log_json": ("", _string, False, "also write JSON-lines logs to this file (empty: off)"),
        "reload_interval": (2.0, _number(0.1, 3600), False,
                            "seconds between checks for admin-CLI changes"),
    },
    "client": {
        "udp": ("127.0.0.1:7060", _listener, False, "client protocol over UDP"),
        "tcp": ("127.0.0.1:7060", _listener, False, "client protocol over TCP"),
        "tls": ("127.0.0.1:7061", _listener, False, "client protocol over TCP with TLS"),
        "idle_timeout": (90.0, _number(5, 86400), False, "seconds without a ping before expiry"),
        "reattach_grace": (30.0, _number(0, 3600), False,
                           "seconds an answered call waits for its client to re-attach after "
                           "a lost session (0: release at once)"),
        "max_message": (8192, _number(512, 1 << 20, int), False, "largest control message, bytes"),
    },
    "web": {
        "https": ("127.0.0.1:8443", _listener, False,
                  "HTTPS (HTTP/2 + HTTP/1.1) site, JSON API and WebSocket"),
        "cert": ("", _string, False, "PEM certificate; empty: a self-signed one is made"),
        "key": ("", _string, False, "PEM private key for cert"),
    },
    "sip": {
        "udp": ("127.0.0.1:5060", _listener, False, "SIP over UDP"),
        "tcp": ("127.0.0.1:5060", _listener, False, "SIP over TCP"),
        "t1": (0.5, _number(0.01, 60), False, "RFC 3261 T1, seconds"),
        "t2": (4.0, _number(0.1, 600), False, "RFC 3261 T2, seconds"),
        "t4": (5.0, _number(0.1, 600), False, "RFC 3261 T4, seconds"),
        "strangers": ("answer", _choice("answer", "drop"), False,
                      "a request from a source that is no configured gateway or proxy: one "
                      "stateless answer (answer) or none (drop); never retransmitted"),
        "trusted": ([], _networks, False,
                    "addresses or networks that are peers from the start (gateways and "
                    "proxies are peers once callgw sent them a request)"),
        "user_agent": ("callgw", _user_agent, False,
                       "the Server and User-Agent value (no version unless you put one)"),
    },
    "mgcp": {
        "udp": ("127.0.0.1:2727", _listener, False, "MGCP call agent (RFC 3435) over UDP"),
        "retransmit": (0.2, _number(0.01, 10), False,
                       "RFC 3435 4.3 initial retransmission timer, seconds (doubles to 4 s)"),
        "t_max": (20.0, _number(1, 600), False,
                  "RFC 3435 3.5 T-MAX: longest a command is retransmitted, seconds"),
    },
    "limits": {
        "tls_handshake_timeout": (10.0, _number(1, 300), False,
                                  "seconds a TLS connection may take to handshake"),
        "connections_per_source": (256, _number(0, 1 << 20, int), False,
                                   "open TCP/TLS connections per source address and "
                                   "listener (0: no cap)"),
        "http_request_timeout": (15.0, _number(1, 600), False,
                                 "seconds for an HTTP request's line, headers and body "
                                 "(or a WebSocket handshake) to arrive"),
        "http_idle_timeout": (60.0, _number(5, 86400), False,
                              "seconds an idle HTTP connection stays open"),
        "http_max_uri": (4096, _number(256, 65536, int), False, "longest request target, bytes"),
        "http_max_headers": (16384, _number(1024, 1 << 20, int), False,
                             "request line and headers together, bytes"),
        "http_max_header_count": (100, _number(10, 10000, int), False,
                                  "header fields per request"),
        "http_max_body": (65536, _number(1024, 16 << 20, int), False,
                          "largest request body, bytes (held in memory, never spooled)"),
        "websocket_debug": (False, _bool, False,
                            "log the WebSocket library's debug messages (verbose)"),
    },
    "admin": {
        "metrics_token": ("", _string, True,
                          "bearer token Prometheus may send for /metrics (empty: off; "
                          "at least 16 characters)"),
        "session_lifetime": (28800.0, _number(60, 30 * 86400), False,
                             "seconds an admin sign-in lasts at most"),
        "session_idle": (1800.0, _number(60, 30 * 86400), False,
                         "seconds an unused admin session lasts"),
        "credential_cache": (60.0, _number(0, 3600), False,
                             "seconds a verified admin password is remembered (0: never)"),
        "max_failures": (5, _number(1, 1000, int), False,
                         "failed admin sign-ins from one source before it is throttled"),
        "failure_window": (300.0, _number(1, 86400), False,
                           "seconds failures are counted over; a throttled source waits "
                           "this long"),
    },
    "h323": {
        "address": ("127.0.0.1", _string, False,
                    "local address for H.323: RAS sockets toward gatekeepers, and the address "
                    "named in Setup and RRQ"),
        "alias": ("callgw", _string, False, "our h323-ID toward gateways and gatekeepers"),
        "ttl": (60, _number(10, 86400, int), False,
                "registration timeToLive asked of gatekeepers, seconds (keep-alive RRQ before)"),
    },
    "manhole": {
        "telnet": ("127.0.0.1:6023", _listener, False,
                   "telnet manhole; stays off until password_hash is set"),
        "user": ("admin", _string, False, "manhole user name"),
        "password_hash": ("", _string, True, "from `callgw hash-password`"),
    },
    "security": {
        "token_keys": ([], _string_list, True,
                       "\"KEYID:SECRET\" entries; the first signs, all verify; empty: random"),
        "token_lifetime": (3600, _number(60, 30 * 86400, int), False, "seconds"),
    },
    "calls": {
        "setup_timeout": (8.0, _number(0.5, 120), False,
                          "seconds to wait for a provisional answer"),
        "no_answer_timeout": (60.0, _number(1, 600), False, "seconds of ringing before giving up"),
        "max_duration": (14400.0, _number(10, 86400 * 2), False, "longest call, seconds"),
        "max_attempts": (3, _number(1, 10, int), False, "gateways tried per call"),
        "balancer": ("least-calls", _choice("least-calls", "round-robin", "weighted"), False,
                     "call-server load-balancing policy"),
        "health_interval": (10.0, _number(0, 3600), False,
                            "seconds between gateway health probes (0: off)"),
        "echo_number": ("", _echo_number, False,
                        "E.164 number callgw answers itself: a prompt tone, then your own "
                        "audio back (empty: off)"),
    },
    "media": {
        "address": ("127.0.0.1", _string, False, "local address for RTP"),
        "rtp_ports": ("30000-39999", _port_range, False, "RTP/RTCP port range"),
        "inactivity_timeout": (30.0, _number(1, 3600), False, "seconds without media"),
        "backend": ("relay", _choice("relay", "rtpengine"), False,
                    "direct-mode media: relay (passes untouched) or rtpengine (anchored)"),
        "rtpengine": ("127.0.0.1:2223", _hostport, False, "rtpengine's ng control address"),
    },
    "cluster": {
        "role": ("all", _choice("all", "frontend", "callserver"), False,
                 "this process: all (one process), frontend (authenticates clients and sends "
                 "them to a call server) or callserver (places calls); twistd --role overrides"),
        "secret": ("", _string, True,
                   "shared secret of the front ends and call servers (at least 16 characters; "
                   "needed for the roles frontend and callserver)"),
        "amp": ("127.0.0.1:7710", _listener, False,
                "a call server's cluster link that front ends connect to: AMP over TLS with "
                "the node's certificate ([web] cert or the self-signed one), each side "
                "proving the secret"),
        "advertise": ("", _address_or_empty, False,
                      "the IP address clients and front ends reach this call server at (empty: "
                      "the address each listener binds); a redirect carries an address"),
        "heartbeat": (2.0, _number(0.2, 60), False,
                      "seconds between a call server's heartbeats (its load, in the "
                      "call-servers table and over the link)"),
        "dead_after": (3, _number(2, 100, int), False,
                       "missed heartbeats after which a call server counts as dead: front ends "
                       "stop choosing it, a survivor closes its calls"),
    },
}


class Config:
    """The effective configuration: ``config["sip"]["udp"]`` or ``config.listener("sip", "udp")``."""

    def __init__(self, values: dict[str, dict[str, Any]], path: str | None = None):
        self.values = values
        self.path = path

    def __getitem__(self, section: str) -> dict[str, Any]:
        return self.values[section]

    def listener(self, section: str, key: str) -> Listener | None:
        return parse_listener(self.values[section][key])

    def with_overrides(self, overrides: dict[str, dict[str, Any]]) -> "Config":
        """A copy with ``overrides`` applied and checked like a file."""
        merged = copy.deepcopy(self.values)
        for section, keys in overrides.items():
            merged.setdefault(section, {}).update(keys)
        return from_dict(merged, self.path)


def defaults() -> Config:
    values = {s: {k: copy.deepcopy(v[0]) for k, v in keys.items()} for s, keys in SCHEMA.items()}
    _anchor_database(values["general"], None)
    return Config(values)


def home() -> Path:
    """Where the built-in default paths point, the same for the gateway and the admin CLI
    wherever each is run from: ``$CALLGW_HOME``; else, in a virtualenv, the folder holding it
    (the project folder with ``make run``); else ``$XDG_DATA_HOME/callgw``
    (``~/.local/share/callgw``)."""
    env = os.environ.get("CALLGW_HOME")
    if env:
        return Path(env).expanduser().resolve()
    if sys.prefix != sys.base_prefix:
        return Path(sys.prefix).resolve().parent
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "callgw"


def _anchor_database(general: dict, config_path: str | None) -> None:
    """A relative SQLite ``database`` path is made absolute: against the folder of the config
    file that names it, or -- the built-in default -- against ``home()``. So ``twistd callgw``
    and ``callgw ...`` open the same file whatever folder they start in."""
    database = general.get("database")
    if not isinstance(database, str) or not database or database == ":memory:" or \
            "://" in database or os.path.isabs(database):
        return
    base = Path(os.path.abspath(config_path)).parent if config_path else home()
    general["database"] = str(base / database)


def from_dict(data: dict[str, Any], path: str | None = None) -> Config:
    """Check ``data`` (as parsed from TOML) against the schema; raise ConfigError on a fault."""
    values = defaults().values
    for section, keys in data.items():
        if section not in SCHEMA:
            raise ConfigError(f"unknown section [{section}]")
        if not isinstance(keys, dict):
            raise ConfigError(f"[{section}] must be a table")
        for key, value in keys.items():
            if key not in SCHEMA[section]:
                raise ConfigError(f"unknown key [{section}] {key}")
            try:
                values[section][key] = SCHEMA[section][key][1](value)
            except ValueError as e:
                raise ConfigError(f"[{section}] {key}: {e}") from None
    for entry in values["security"]["token_keys"]:
        kid, sep, secret = entry.partition(":")
        if not sep or not kid or len(secret) < 16:
            raise ConfigError("[security] token_keys: each entry is \"KEYID:SECRET\" "
                              "with a secret of at least 16 characters")
    token = values["admin"]["metrics_token"]
    if token and (len(token) < 16 or not token.isascii() or not token.isprintable()
                  or " " in token):
        raise ConfigError("[admin] metrics_token: at least 16 printable ASCII characters, "
                          "no spaces")
    if values["manhole"]["password_hash"]:
        from callgw.passwords import parse
        try:
            parse(values["manhole"]["password_hash"])
        except ValueError as e:
            raise ConfigError(f"[manhole] password_hash: {e}") from None
    cluster = values["cluster"]
    if cluster["role"] != "all":
        check_cluster(values)
    named = isinstance(data.get("general"), dict) and "database" in data["general"]
    _anchor_database(values["general"], path if named else None)
    return Config(values, path)


def check_cluster(values: dict) -> None:
    """What the roles ``frontend`` and ``callserver`` need: a shared secret, a shared database
    (each process its own SQLite file would be separate clusters)."""
    secret = values["cluster"]["secret"]
    if len(secret) < 16:
        raise ConfigError("[cluster] secret: at least 16 characters, the same on every front "
                          "end and call server (needed for the role "
                          f"{values['cluster']['role']})")
    if values["cluster"]["amp"] == "off" and values["cluster"]["role"] == "callserver":
        raise ConfigError("[cluster] amp: a call server needs its cluster link (not off)")


def load(path: str | None) -> Config:
    """Read ``path`` (None: the defaults). Raises ConfigError with one line on any fault."""
    if path is None:
        return defaults()
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    return from_dict(data, path)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    escaped = "".join(c if c >= " " else f"\\u{ord(c):04x}" for c in escaped)
    return f'"{escaped}"'


def dump(config: Config, redact: bool = False) -> str:
    """The configuration as TOML; ``redact`` masks secrets (the result is then not loadable)."""
    out = ["# callgw configuration (effective values). Listeners: \"HOST:PORT\" or \"off\"."]
    for section, keys in SCHEMA.items():
        out.append(f"\n[{section}]")
        for key, (_, _, secret, comment) in keys.items():
            value = config[section][key]
            if redact and secret and value:
                value = ["<redacted>"] if isinstance(value, list) else "<redacted>"
            out.append(f"{key} = {_toml_value(value)}  # {comment}")
    return "\n".join(out) + "\n"
