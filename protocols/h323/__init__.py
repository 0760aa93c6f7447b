"""H.323 (ITU-T H.323 v4): TPKT, Q.931/H.225.0 call signalling, H.245 and RAS, as sans-I/O cores
(``per``, ``tpkt``, ``q931``, ``h225``, ``h245``, ``msd``, ``h245session``, ``callstate``,
``call``, ``ras``, ``causes``) plus thin
Twisted adapters (``adapter``). See docs/protocols/h323.md; tests live in tests/h323/."""
