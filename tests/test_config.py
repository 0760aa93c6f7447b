"""Configuration: defaults on loopback, one-line errors naming the key, show round-trips."""
import pytest

from callgw import config
from callgw.config import ConfigError


def test_every_default_listener_is_on_loopback():
    cfg = config.defaults()
    listeners = [(s, k) for s, keys in config.SCHEMA.items() for k, v in keys.items()
                 if v[1] is config._listener]
    assert len(listeners) >= 7
    for section, key in listeners:
        listener = cfg.listener(section, key)
        assert listener is not None, (section, key)
        assert listener.host == "127.0.0.1", (section, key)


def test_manhole_is_off_without_a_credential():
    assert config.defaults()["manhole"]["password_hash"] == ""


@pytest.mark.parametrize("toml, message", [
    ("[sip]\nudpp = \"127.0.0.1:5060\"\n", "unknown key [sip] udpp"),
    ("[nosuch]\nx = 1\n", "unknown section [nosuch]"),
    ("[sip]\nudp = \"localhost:5060\"\n", "[sip] udp: 'localhost' is not an IP address"),
    ("[sip]\nudp = \"127.0.0.1:70000\"\n", "[sip] udp: port 70000 out of range"),
    ("[sip]\nt1 = \"fast\"\n", "[sip] t1: expected a number"),
    ("[calls]\nmax_attempts = 2.5\n", "[calls] max_attempts: expected a whole number"),
    ("[calls]\nbalancer = \"random\"\n", "[calls] balancer: expected one of"),
    ("[media]\nrtp_ports = \"30001-30000\"\n", "[media] rtp_ports"),
    ("[security]\ntoken_keys = [\"short\"]\n", "[security] token_keys"),
    ("[manhole]\npassword_hash = \"plain\"\n", "[manhole] password_hash"),
    ("[cluster]\nadvertise = \"cs-1.example.net\"\n",
     "[cluster] advertise: 'cs-1.example.net' is not an IP address"),
    ("[sip\n", "not valid TOML"),
])
def test_errors_name_the_key(tmp_path, toml, message):
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as e:
        config.load(str(path))
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_missing_file_is_one_line():
    with pytest.raises(ConfigError, match="cannot read /nonexistent.toml"):
        config.load("/nonexistent.toml")


def test_show_output_loads_back_unchanged(tmp_path):
    cfg = config.from_dict({"sip": {"udp": "[::1]:5070", "t1": 0.25},
                            "client": {"tls": "off"},
                            "security": {"token_keys": ["k1:0123456789abcdef0123"]},
                            "general": {"node": "a \"quoted\" name\\x"}})
    path = tmp_path / "shown.toml"
    path.write_text(config.dump(cfg))
    again = config.load(str(path))
    assert again.values == cfg.values
    assert again.listener("sip", "udp") == config.Listener("::1", 5070)
    assert again.listener("client", "tls") is None


def test_redact_masks_secrets():
    cfg = config.from_dict({"security": {"token_keys": ["k1:0123456789abcdef0123"]}})
    shown = config.dump(cfg, redact=True)
    assert "0123456789abcdef" not in shown
    assert "<redacted>" in shown
