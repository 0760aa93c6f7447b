"""The [mgcp] settings (callgw/config.py): the call agent listens on 127.0.0.1:2727 by default,
its RFC 3435 timers are settings, bad values are one-line errors, and dump/load round-trips."""
from __future__ import annotations

import pytest

from callgw import config


def test_defaults_are_loopback_2727_and_the_rfc_timers():
    cfg = config.defaults()
    assert cfg.listener("mgcp", "udp") == config.Listener("127.0.0.1", 2727)
    assert (cfg["mgcp"]["retransmit"], cfg["mgcp"]["t_max"]) == (0.2, 20.0)


@pytest.mark.parametrize("data, error", [
    ({"mgcp": {"udp": "localhost:2727"}}, "[mgcp] udp: 'localhost' is not an IP address"),
    ({"mgcp": {"retransmit": 0}}, "[mgcp] retransmit: 0 is out of range"),
    ({"mgcp": {"port": 2727}}, "unknown key [mgcp] port"),
])
def test_bad_values_are_one_line_errors(data, error):
    with pytest.raises(config.ConfigError) as exc:
        config.from_dict(data)
    assert str(exc.value).startswith(error)


def test_off_and_round_trip(tmp_path):
    cfg = config.from_dict({"mgcp": {"udp": "off", "t_max": 5}})
    assert cfg.listener("mgcp", "udp") is None
    path = tmp_path / "c.toml"
    path.write_text(config.dump(cfg))
    assert config.load(str(path))["mgcp"] == cfg["mgcp"]
