"""MGCP for callgw: a sans-I/O call agent (RFC 3435, RFC 3660 packages) plus a thin Twisted adapter.

Pure modules: ``codes`` (verbs, parameter names, return and reason codes, restart methods),
``message`` (the codec: command and response lines, parameter lines, SDP bodies, piggy-backed
messages), ``params`` (structured parameter values: ``K:`` ranges, ``P:`` statistics, event and
signal lists, ``L:`` options), ``endpoint`` (endpoint names, wildcards, gateway dialects),
``transaction`` (RFC 3435 3.5 / 4.3 transactions: retransmission, at-most-once, provisional
responses, response acknowledgement), ``restart`` (RSIP restart methods as a service state table,
RFC 3435 2.3.12 / 4.4.5-4.4.7), ``agent`` (the call agent: transaction tables, dispatch, bad
messages answered with the RFC's codes, connections). ``adapter`` is the only module that
touches a socket or a clock. See docs/protocols/mgcp.md.

Tests: tests/mgcp/.
"""
