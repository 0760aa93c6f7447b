"""docs/protocols/mgcp.md shows the transaction and service-state tables as the code has them:
the markdown tables are generated from the tables (``python -m tests.mgcp.test_docs`` prints
them) and must appear in the document verbatim, so the picture cannot drift from the code."""
from __future__ import annotations

import pathlib

from protocols.mgcp import restart, transaction

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "protocols" / "mgcp.md"


def markdown(rows) -> str:
    lines = ["| state | input | action | next state |", "|---|---|---|---|"]
    lines += [f"| {s} | {i} | `{a}` | {n} |" for s, i, a, n in rows]
    return "\n".join(lines) + "\n"


def tables() -> dict[str, str]:
    service = [(s.value, i.value, a.__name__, n.value) for (s, i), (a, n) in restart.TABLE.items()]
    return {
        "ClientTransaction": markdown(transaction.table_rows(transaction.ClientTransaction)),
        "ServerTransaction": markdown(transaction.table_rows(transaction.ServerTransaction)),
        "EndpointService": markdown(service),
    }


def test_doc_holds_the_generated_tables():
    text = DOC.read_text()
    for name, table in tables().items():
        assert table in text, f"{name}'s table in {DOC} is out of date: regenerate it"


if __name__ == "__main__":
    for name, table in tables().items():
        print(f"### {name}\n\n{table}")
