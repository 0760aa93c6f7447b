"""Media for calls: the built-in RTP relay and its parts.

- ``ports``: even/odd RTP/RTCP port pairs from a configured range.
- ``endpoint``: the relay's sockets, one epoll set under the reactor, the per-packet path.
- ``relay``: ``MediaRelay`` (one per process) and ``RelaySession`` (one per call,
  ``IMediaSession``): latching, conversion, relayed mode, DTMF, inactivity.
- ``playout``: client frames to paced RTP with a small jitter buffer (no I/O).
- ``quality``: RTCP and per-direction statistics with a MOS estimate.

The RTP codecs and statistics themselves are in ``protocols.rtp``. Tests: tests/media/.
"""
from callgw.media.ports import PortRange, PortsExhausted
from callgw.media.relay import MediaError, MediaRelay, RelaySession

__all__ = ["MediaError", "MediaRelay", "PortRange", "PortsExhausted", "RelaySession"]
