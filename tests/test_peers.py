"""A missing real peer skips a test with the reason, and fails it with CI=true
(tests/peers.py)."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

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


#: tests that skip for a reason other than a missing peer (a machine capability), CI-aware
OWN_SKIPS = {"tests/callpath/test_db_faults.py"}
SKIPPING = re.compile(r"\bpytest\.skip\(|\bskipif\(|\bimportorskip\(|\bHAVE_[A-Z]+\b")


def test_no_test_decides_about_peers_on_its_own():
    """Every test that needs a peer asks tests/peers.py (a skipif of its own skipped in CI)."""
    root = Path(__file__).resolve().parent.parent
    offenders = []
    for path in sorted((root / "tests").rglob("*.py")):
        name = str(path.relative_to(root))
        if name in OWN_SKIPS or name in ("tests/peers.py", "tests/test_peers.py"):
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if SKIPPING.search(line):
                offenders.append(f"{name}:{n}: {line.strip()}")
    assert not offenders, ("use tests.peers (pytest.mark.peers / require_peer) instead:\n"
                           + "\n".join(offenders))
