"""A missing real peer skips a test with the reason, and fails it with CI=true
(tests/peers.py)."""
from __future__ import annotations

import shutil

import pytest

from tests.peers import require_peer

ABSENT = "no-such-peer-callgw-test"


def test_an_installed_peer_gives_its_path(monkeypatch):
    monkeypatch.setenv("CI", "true")
    assert require_peer("sh") == shutil.which("sh")


def test_a_missing_peer_skips_with_the_reason(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=f"real peer not installed: {ABSENT}"):
        require_peer("sh", ABSENT)


@pytest.mark.parametrize("value", ["true", "1", "yes", "TRUE"])
def test_with_ci_a_missing_peer_fails_naming_its_package(monkeypatch, value):
    monkeypatch.setenv("CI", value)
    monkeypatch.setattr("shutil.which", lambda name, *a, **k: None)
    with pytest.raises(pytest.fail.Exception, match=r"sipp \(Debian sip-tester\).*CI=true"):
        require_peer("sipp")


def test_the_marker_applies_require_peer(pytester, monkeypatch, request):
    monkeypatch.setenv("PYTHONPATH", str(request.config.rootpath))
    pytester.makeconftest('pytest_plugins = ["tests.peers"]\n')
    pytester.makepyfile(test_it=f'''
import pytest

pytestmark = pytest.mark.peers("sh", "{ABSENT}")

def test_needs_it():
    pass
''')
    monkeypatch.delenv("CI", raising=False)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(skipped=1)
    assert f"real peer not installed: {ABSENT}" in result.stdout.str()
    monkeypatch.setenv("CI", "true")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    assert "with CI=true a missing peer fails the test" in result.stdout.str()
