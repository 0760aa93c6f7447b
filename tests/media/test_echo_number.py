"""The echo test number (callgw/callserver/legs/echo.py): ``callgw-dial`` calls ``[calls]
echo_number`` with no gateway configured at all, and hears the 440 Hz prompt, then its own
1 kHz tone back; the CDR names the echo leg like a gateway."""
from __future__ import annotations

import pytest
import pytest_twisted

from test_media_calls import (dial, goertzel, read_samples, settled_cdr, start, tone_frames,
                              url, write_tone)
from tests.callpath.callgw_env import prepare_db

ECHO = "+4930999999"


def prompt_frames_heard(samples, first=60):
    """20 ms frames among the first ``first`` where 440 Hz carries most of the energy."""
    hits = 0
    for i in range(min(first, len(samples) // 160)):
        chunk = samples[i * 160:(i + 1) * 160]
        energy = sum(x * x for x in chunk) * 80.0
        if energy and goertzel(chunk, 440.0) / energy > 0.8 and \
                goertzel(chunk, 1000.0) / energy < 0.05:
            hits += 1
    return hits


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("scheme", ["udp", "tcp"])
def test_the_echo_number_plays_a_prompt_then_echoes_the_caller(tmp_path, scheme):
    source, heard = tmp_path / "tone.wav", tmp_path / "heard.wav"
    played = write_tone(source, seconds=3.0)
    prepare_db(tmp_path)                               # users only: no gateway at all
    gw = yield start(tmp_path, calls={"echo_number": ECHO})
    try:
        code, out = yield dial("--server", url(gw, scheme), "--user", "alice",
                               "--duration", "4", "--play", str(source),
                               "--record", str(heard), ECHO)
        assert code == 0, out
        samples = read_samples(heard)
        prompt = prompt_frames_heard(samples)
        hits, _, strength = tone_frames(samples)
        print(f"echo over {scheme}: {prompt} prompt frames, {hits}/{played} tone frames back, "
              f"median {strength:.1f} dB")
        assert prompt >= 20                             # 0.6 s of prompt = 30 frames
        assert hits >= 0.8 * (played - 30)              # the tone, after the prompt
        cdr = (yield settled_cdr(gw, "alice"))[0]
        assert cdr["gateway"] == "echo" and cdr["target"] == ECHO and cdr["answered"]
        assert cdr["stats"]["media"]["frames_to_client"] > 100
    finally:
        yield gw.stopService()
