"""Keeps docs/operations.md and the systemd units in packaging/systemd/ honest.

Every TOML block in docs/operations.md loads with callgw's own configuration loader (the roles
``frontend`` and ``callserver`` with their [cluster] checks); the two-host layout's processes
share what a cluster must share (secret, database, token keys, certificate), have unique node
names named like their files, and bind no address twice on one host; the firewall table opens
every port they (and rtpengine) bind; every ``callgw ...``
command shown parses with callgw's own argparse parser and every ``--role`` named exists; each
unit's ExecStart is accepted by ``twistd callgw``'s option parser with the layout's
configuration, the units differ only in their role, and ``systemd-analyze verify`` finds
nothing wrong with them (systemd-analyze, Debian systemd, is a peer like the others).

Tests: this file.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import ipaddress
import re
import shlex
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

from callgw import cli, tap
from callgw.config import SCHEMA, from_dict
from tests.peers import require_peer

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "operations.md"
UNITS = ROOT / "packaging" / "systemd"
UNIT_ROLES = {"callgw@.service": "all", "callgw-frontend@.service": "frontend",
              "callgw-callserver@.service": "callserver"}
SHELL = {"sh", "shell", "bash", "console"}


def doc() -> str:
    return DOC.read_text(encoding="utf-8")


def fenced(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced block, also those indented in a list item."""
    out = []
    for match in re.finditer(r"^( *)```(\w*)\n(.*?)^\1```", text, re.M | re.S):
        out.append((match.group(2), textwrap.dedent(match.group(3))))
    return out


def indented(text: str) -> list[str]:
    """The lines of indented code blocks (four spaces after a blank line), outside fences."""
    text = re.sub(r"^( *)```.*?^\1```", "", text, flags=re.M | re.S)
    lines, out, inside = text.splitlines(), [], False
    for previous, line in zip([""] + lines, lines):
        if line.startswith("    ") and (inside or not previous.strip()):
            inside = True
            out.append(line[4:])
        elif line.strip():
            inside = False
    return out


def layout() -> dict[str, tuple[str, dict]]:
    """node file name -> (host, parsed TOML) for each process of the two-host layout."""
    found = re.findall(r"\*\*`/etc/callgw/([\w-]+)\.toml`\*\* on host (\w+):\s*\n\s*```toml\n"
                       r"(.*?)```", doc(), re.S)
    return {name: (host, tomllib.loads(body)) for name, host, body in found}


def test_every_toml_block_loads_with_the_config_loader():
    blocks = [body for lang, body in fenced(doc()) if lang == "toml"]
    assert len(blocks) >= 5
    for body in blocks:
        data = tomllib.loads(body)
        config = from_dict(data)        # raises ConfigError (one line naming the key)
        role = data.get("cluster", {}).get("role")
        if role is not None:
            assert config["cluster"]["role"] == role
            assert role == "all" or len(config["cluster"]["secret"]) >= 16


def test_the_layout_is_one_cluster_that_fits_on_its_hosts():
    processes = layout()
    assert sorted(processes) == ["cs-1", "cs-2", "fe-a"]
    roles = sorted(data["cluster"]["role"] for _, data in processes.values())
    assert roles == ["callserver", "callserver", "frontend"]
    configs = {name: from_dict(data) for name, (_, data) in processes.items()}
    for name, config in configs.items():
        assert config["general"]["node"] == name        # the unit instance is the node name
    shared = [("cluster", "secret"), ("general", "database"), ("security", "token_keys"),
              ("web", "cert"), ("web", "key")]
    for section, key in shared:
        values = {repr(c[section][key]) for c in configs.values()}
        assert len(values) == 1, f"[{section}] {key} differs between the nodes: {values}"
    assert configs["fe-a"]["security"]["token_keys"], "tokens must verify on every node"
    assert configs["fe-a"]["general"]["database"].startswith("postgresql://")

    by_host: dict[str, list[tuple[str, str, object]]] = {}
    for name, (host, _) in processes.items():
        for proto, where in _bound(configs[name]):
            for other_name, other_proto, other in by_host.get(host, []):
                assert not (proto == other_proto and _overlap(where, other)), \
                    f"host {host}: {name} and {other_name} both bind {proto} {where}"
        by_host.setdefault(host, []).extend((name, proto, w) for proto, w in
                                            _bound(configs[name]))
    for name, config in configs.items():
        if config["cluster"]["role"] != "callserver":
            continue
        assert config["cluster"]["advertise"] == ""     # each listener binds a real address
        for proto, (address, _) in _bound(config):
            assert not ipaddress.ip_address(address).is_loopback, (name, proto, address)
            assert not ipaddress.ip_address(address).is_unspecified, (name, proto, address)


def test_the_firewall_table_opens_what_the_layout_binds():
    text = doc()
    table = text[text.index("### Firewall"):text.index("## Running under systemd")]
    opened = set(re.findall(r"(\d+(?:-\d+)?)/(udp|tcp)", table))
    for name, (_, data) in layout().items():
        config = from_dict(data)
        for proto, (_, ports) in _bound(config):
            port = str(ports[0]) if len(ports) == 1 else f"{ports[0]}-{ports[-1]}"
            assert (port, proto) in opened, f"{name} binds {port}/{proto}: not in the table"
        if config["cluster"]["role"] == "callserver":
            port = config["media"]["rtpengine"].rpartition(":")[2]
            assert (port, "udp") in opened, f"rtpengine's ng port {port}/udp: not in the table"
    ini = dict(re.findall(r"^([\w-]+) = (.*)$", re.search(r"```ini\n(.*?)```", text,
                                                         re.S).group(1), re.M))
    assert (f"{ini['port-min']}-{ini['port-max']}", "udp") in opened
    assert any(ini["listen-ng"] == c["media"]["rtpengine"]
               for c in (from_dict(d) for _, d in layout().values()) if c["cluster"]["role"]
               == "callserver")


def _bound(config) -> list[tuple[str, tuple[str, range]]]:
    """What a process of its role binds: (udp|tcp, (address, ports))."""
    role = config["cluster"]["role"]
    sockets = [("udp", "client", "udp"), ("tcp", "client", "tcp"), ("tcp", "client", "tls"),
               ("tcp", "web", "https")]
    if config["manhole"]["password_hash"]:
        sockets.append(("tcp", "manhole", "telnet"))
    if role != "frontend":
        sockets += [("udp", "sip", "udp"), ("tcp", "sip", "tcp"), ("udp", "mgcp", "udp")]
    if role == "callserver":
        sockets.append(("tcp", "cluster", "amp"))
    out = []
    for proto, section, key in sockets:
        listener = config.listener(section, key)
        if listener is not None:
            out.append((proto, (listener.host, range(listener.port, listener.port + 1))))
    if role != "frontend":
        low, high = (int(p) for p in config["media"]["rtp_ports"].split("-"))
        out.append(("udp", (config["media"]["address"], range(low, high + 1))))
    return out


def _overlap(a, b) -> bool:
    (host_a, ports_a), (host_b, ports_b) = a, b
    same_host = host_a == host_b or "0.0.0.0" in (host_a, host_b) or "::" in (host_a, host_b)
    return same_host and bool(set(ports_a) & set(ports_b))


# -- commands ------------------------------------------------------------------------------------
def _subcommands(parser: argparse.ArgumentParser) -> set[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    raise AssertionError("callgw's parser has no subcommands")


def _segments(line: str) -> list[list[str]]:
    """The simple commands of a shell line (pipes, && and ; split; comments dropped), each
    without leading VAR=value assignments."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars="|&;")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    out, current = [], []
    for token in lexer:
        if token and set(token) <= set("|&;"):
            out.append(current)
            current = []
        else:
            current.append(token)
    out.append(current)
    return [[t for i, t in enumerate(c) if not (re.match(r"^[A-Z_]+=", t) and
                                                all(re.match(r"^[A-Z_]+=", x) for x in c[:i]))]
            for c in out if c]


def _shell_lines(body: str) -> list[str]:
    return [line for line in body.replace("\\\n", " ").splitlines() if line.strip()]


def commands() -> tuple[list[list[str]], list[list[str]], list[str]]:
    """(callgw argument lists, callgw command names mentioned in prose, twistd lines) shown in
    docs/operations.md."""
    text, known = doc(), _subcommands(cli.build_parser())
    found, named, twistd = [], [], []

    def take(line: str, strict: bool) -> None:
        if "twistd" in line:
            twistd.append(line)
        for words in _segments(line):
            if words and words[0] == "sudo":
                words = words[1:]
            if len(words) < 2 or words[0] != "callgw":
                continue
            # outside shell blocks a line like "callgw failed to start: ..." is log output
            if strict or words[1].startswith("-") or words[1] in known:
                found.append(words[1:])

    for lang, body in fenced(text):
        if lang in SHELL or lang == "":
            for line in _shell_lines(body):
                take(line, lang in SHELL)
    for line in indented(text):
        take(line, False)
    for span in re.findall(r"`([^`\n]+)`", text):
        words = span.split()
        if words[0] == "callgw" and len(words) > 1 and (words[1] in known or
                                                         words[1].startswith("-")):
            path = _command_path(words[1:])
            # `callgw admin passwd` in a sentence names a command; with more it is one
            (named if path == len(words) - 1 else found).append(words[1:])
        elif words[0] == "twistd":
            twistd.append(span)
    return found, named, twistd


def _command_path(words: list[str]) -> int:
    """How many of ``words`` name (sub)commands of callgw's parser, from the top."""
    parser, depth = cli.build_parser(), 0
    for word in words:
        choices = {}
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                choices = action.choices
        if word not in choices:
            break
        parser, depth = choices[word], depth + 1
    return depth


def test_every_callgw_command_shown_parses():
    found, _, _ = commands()
    joined = [" ".join(words) for words in found]
    for needed in ("server drain cs-2", "server resume cs-2", "server list", "calls --json",
                   "init"):
        assert any(needed in line for line in joined), f"docs show no `callgw {needed}`"
    for words in found:
        errors = io.StringIO()
        try:
            with contextlib.redirect_stderr(errors):
                cli.build_parser().parse_args(words)
        except SystemExit:
            raise AssertionError(f"`callgw {' '.join(words)}` in docs/operations.md does not "
                                 f"parse: {errors.getvalue().strip()}") from None


def test_every_role_named_exists():
    _, _, twistd = commands()
    named = []
    for line in twistd:
        for match in re.finditer(r"--role[ =]([\w|.]+)", line):
            named += match.group(1).split("|")
    named = [n for n in named if n not in ("...", "X")]
    assert set(named) >= set(tap.ROLES), f"docs name roles {named}"
    assert set(named) <= set(tap.ROLES), f"unknown roles in docs: {set(named) - set(tap.ROLES)}"


# -- systemd units ------------------------------------------------------------------------------
def unit(name: str) -> dict[str, list[str]]:
    """``Key`` -> values of one unit file (keys may repeat)."""
    out: dict[str, list[str]] = {}
    for line in (UNITS / name).read_text().splitlines():
        if line.strip() and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def _exec_args(name: str) -> list[str]:
    words = shlex.split(unit(name)["ExecStart"][0])
    assert words[0].endswith("/twistd"), words
    assert words[1:4] == ["-n", "--pidfile=", "callgw"], words
    return words[4:]


def test_one_unit_per_role_and_each_execstart_names_its_role():
    assert {p.name for p in UNITS.glob("*.service")} == set(UNIT_ROLES)
    assert set(UNIT_ROLES.values()) == set(tap.ROLES)
    for name, role in UNIT_ROLES.items():
        args = _exec_args(name)
        assert args == ["--config", "/etc/callgw/%i.toml", "--role", role], args
        values = unit(name)
        assert values["User"] == ["callgw"] and values["Restart"] == ["on-failure"]
        for key in ("NoNewPrivileges", "PrivateTmp", "ProtectHome"):
            assert values[key] == ["yes"], key
        assert values["ProtectSystem"] == ["strict"]
        assert "network-online.target" in values["After"][0]
        assert "postgresql.service" in values["After"][0]
        # a crashed call server's name is refused until dead_after heartbeats passed
        restart = float(values["RestartSec"][0].rstrip("s"))
        assert restart > SCHEMA["cluster"]["heartbeat"][0] * SCHEMA["cluster"]["dead_after"][0]
    # the units are one text but for their role (kept in step)
    def neutral(name):
        text = (UNITS / name).read_text().replace(f"--role {UNIT_ROLES[name]}", "--role ROLE")
        return [line for line in text.splitlines()[1:] if not line.startswith("Description=")]
    texts = {name: neutral(name) for name in UNIT_ROLES}
    assert len({tuple(t) for t in texts.values()}) == 1, "the units drifted apart"


def test_twistd_accepts_each_unit_with_the_layouts_configuration(tmp_path):
    for node, (_, data) in layout().items():
        body = re.search(rf"\*\*`/etc/callgw/{node}\.toml`\*\*.*?```toml\n(.*?)```", doc(),
                         re.S).group(1)
        path = tmp_path / f"{node}.toml"
        path.write_text(body)
        role = data["cluster"]["role"]
        name = next(n for n, r in UNIT_ROLES.items() if r == role)
        args = [a.replace("/etc/callgw/%i.toml", str(path)) for a in _exec_args(name)]
        options = tap.Options()
        options.parseOptions(args)
        assert options["loaded"]["cluster"]["role"] == role
        assert options["loaded"]["general"]["node"] == node


def test_systemd_analyze_verify_finds_nothing(tmp_path):
    analyze = require_peer("systemd-analyze")
    twistd = Path(sys.executable).parent / "twistd"
    assert twistd.exists(), twistd
    for name in UNIT_ROLES:
        text = (UNITS / name).read_text().replace("/opt/callgw/bin/twistd", str(twistd))
        (tmp_path / name).write_text(text)
    instances = [str(tmp_path / name.replace("@.", "@node-1.")) for name in UNIT_ROLES]
    done = subprocess.run([analyze, "verify", "--man=no", *instances], capture_output=True,
                          text=True, timeout=60)
    ours = [line for line in (done.stdout + done.stderr).splitlines()
            if "callgw" in line or str(tmp_path) in line]
    assert done.returncode == 0 and not ours, done.stdout + done.stderr
