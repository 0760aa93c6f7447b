"""RTP media core, sans-I/O: RTP/RTCP packets (RFC 3550), receiver statistics and an E-model
MOS estimate, RFC 4733 telephone events and G.711 mu-law/A-law.

No module here imports ``twisted.internet`` or reads a clock; callers pass ``now``.
The relay that uses these lives in ``callgw.media``. Tests: tests/rtp/.
"""
