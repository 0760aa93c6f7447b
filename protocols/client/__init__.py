"""The client protocol ("non-native"): what browsers, the Python client library and
callgw-dial speak to callgw. Sans-I/O throughout; the spec is docs/protocol.md.

- ``errors``: error codes and the ProtocolError types.
- ``fields``, ``messages``: the v1 message model, validation and the JSON codec.
- ``framing``: media frames, TCP length prefixes, WebSocket, HTTP bodies and SSE.
- ``reliable``: message ids, acks, retransmission and anti-amplification for UDP.
- ``scram``, ``tokens``, ``throttle``: login proof math, signed tokens, failed-login throttling.
- ``calls``, ``session``: the server's session machine and its call table (Q.931 states).
- ``client_session``: the client's session machine.
- ``events``: the actions both machines hand to their adapters.
- ``connection``: one session on one framing, for thin Twisted adapters.
- ``docgen``: regenerates the generated parts of docs/protocol.md.

Tests: tests/client_proto/.
"""
