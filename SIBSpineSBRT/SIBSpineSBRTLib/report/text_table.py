"""The pass/fail table as plain text for terminals and logs."""

from __future__ import annotations

from typing import List

from ..dose.radiobiology import metric_radiobiology
from ..review.pipeline import ReviewResult
from .status_style import STATUS_ANSI, STATUS_LABEL


def format_table(result: ReviewResult, color: bool = False) -> str:
    header = ["Structure", "Metric", "Value", "EQD2 (α/β)", "Optimal", "Mandatory", "Status"]
    body: List[List[str]] = []
    p = result.protocol
    for r in result.rows:
        value = "-" if r.value is None else f"{r.value:.2f} {r.unit}"
        role = p.structures.get(r.structure)
        rb = metric_radiobiology(r.metric, r.value, p.fractions, role.alpha_beta_gy if role else None)
        eqd2 = "-" if rb is None else f"{rb['eqd2_gy']:.1f} Gy ({rb['alpha_beta_gy']:g})"
        status = STATUS_LABEL[r.status] + ("*" if r.crosscheck is not None and r.crosscheck.flagged else "")
        body.append([r.structure, r.metric, value, eqd2, r.optimal_text or "-", r.mandatory_text or "-", status])
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]

    def line(cells, status=None):
        text = "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
        if color and status:
            head, tail = text[: -len(cells[-1])], cells[-1]
            return f"{head}\033[{STATUS_ANSI[status]}m{tail}\033[0m"
        return text

    out = [
        f"Case {result.case}, level {result.level}, protocol {result.protocol.id} "
        f"({result.protocol.prescription_gy:g} Gy in {result.protocol.fractions} fractions to "
        f"{result.protocol.prescription_structure} {result.protocol.prescription_metric})",
        "",
        line(header),
        line(["-" * w for w in widths]),
    ]
    out += [line(cells, r.status) for cells, r in zip(body, result.rows)]
    counts = {s: sum(r.status == s for r in result.rows) for s in STATUS_LABEL}
    out += [
        "",
        f"Verdict: {result.verdict.upper()}  ("
        + ", ".join(f"{n} {STATUS_LABEL[s].lower()}" for s, n in counts.items() if n)
        + ")",
    ]
    if any(r.crosscheck is not None and r.crosscheck.flagged for r in result.rows):
        out += ["* the two DVH engines disagree on this row; it is judged on the more conservative value."]
    if result.messages:
        out += ["", *[f"- {m}" for m in result.messages]]
    return "\n".join(out)
