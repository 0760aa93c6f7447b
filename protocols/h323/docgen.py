"""Generate the parts of docs/protocols/h323.md that must not drift from the code: the Q.931
call-state table (``callstate.TABLE``), the msd table (``msd.MasterSlaveDetermination._TABLE``)
and the cause mappings of ``protocols.h323.causes``.
Each lives between ``<!-- generated:NAME -->`` and ``<!-- /generated:NAME -->``;
``python -m protocols.h323.docgen docs/protocols/h323.md`` rewrites them, and
tests/h323/test_docs.py fails when the file is stale.
"""
from __future__ import annotations

import re
import sys

from protocols.h323 import callstate, msd
from protocols.h323.causes import ARJ_CAUSE, CAUSE_TO_REASON, REASON_TO_CAUSE


def _table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def section_callstate():
    rows = [(f"{s} (U{callstate.CallState[s].value})", e, f"{n} (U{callstate.CallState[n].value})",
             start, stop) for s, e, n, start, stop in callstate.rows()]
    return _table(("state", "event", "next state", "start", "stop"), rows)


def section_msd():
    return _table(("state", "input", "handler"), msd.table())


def section_causes():
    parts = ["ReleaseCompleteReason received -> Q.850 cause (used when no Cause IE came):", "",
             _table(("reason", "cause"), sorted(REASON_TO_CAUSE.items())), "",
             "Q.850 cause we release with -> ReleaseCompleteReason we add (others: no reason):", "",
             _table(("cause", "reason"), sorted(CAUSE_TO_REASON.items())), "",
             "AdmissionRejectReason -> Q.850 cause of the call:", "",
             _table(("ARJ reason", "cause"), sorted(ARJ_CAUSE.items()))]
    return "\n".join(parts)


SECTIONS = {"callstate": section_callstate, "msd": section_msd, "causes": section_causes}


def render(document: str) -> str:
    for name, make in SECTIONS.items():
        pattern = re.compile(
            rf"(<!-- generated:{name} -->\n)(?:.*?\n)?(<!-- /generated:{name} -->)", re.S)
        document = pattern.sub(lambda mt: mt.group(1) + make() + "\n" + mt.group(2), document)
    return document


def main(argv):
    path = argv[1]
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    new = render(text)
    if new != text:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
