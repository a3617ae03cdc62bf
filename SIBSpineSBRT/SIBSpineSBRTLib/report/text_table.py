"""The pass/fail table as plain text for terminals and logs."""

from __future__ import annotations

from typing import List

from ..dose.radiobiology import metric_radiobiology
from ..review.pipeline import ReviewResult
from . import content
from .status_style import STATUS_ANSI, STATUS_LABEL


def _rows_table(result: ReviewResult, rows, color: bool) -> List[str]:
    header = ["Structure", "Metric", "Value", "EQD2 (α/β)", "Optimal", "Mandatory", "Status"]
    body: List[List[str]] = []
    p = result.protocol
    for r in rows:
        role = p.structures.get(r.structure)
        rb = metric_radiobiology(r.metric, r.value, p.fractions, role.alpha_beta_gy if role else None)
        eqd2 = "-" if rb is None else f"{rb['eqd2_gy']:.1f} Gy ({rb['alpha_beta_gy']:g})"
        status = STATUS_LABEL[r.status] + ("*" if r.crosscheck is not None and r.crosscheck.flagged else "")
        body.append([r.structure, r.metric, r.value_text, eqd2, r.optimal_text or "-", r.mandatory_text or "-", status])
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]

    def line(cells, status=None):
        text = "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
        if color and status:
            head, tail = text[: -len(cells[-1])], cells[-1]
            return f"{head}\033[{STATUS_ANSI[status]}m{tail}\033[0m"
        return text

    return [line(header), line(["-" * w for w in widths])] + [line(cells, r.status) for cells, r in zip(body, rows)]


def verdict_line(result: ReviewResult) -> str:
    """ "Verdict: PASS  (6 optimal, 1 acceptable, 6 met)", with NON-PROTOCOL REVIEW when there are deviations."""
    return content.verdict_text(result, flag=True)


def format_table(result: ReviewResult, color: bool = False) -> str:
    p = result.protocol
    out = [f"Case {result.case}, level {result.level}, protocol {p.id}: {content.prescription_text(p)}"]
    if result.non_protocol:
        out += ["", f"*** {content.non_protocol_title(p.id)} ***"]
        out += [f"  - {d}" for d in result.deviations]
    out += ["", content.PROTOCOL_HEADING, *_rows_table(result, result.protocol_rows, color)]
    out += ["", verdict_line(result)]
    if content.has_advisory_section(result):
        out += [
            "",
            content.advisory_heading(),
            *(_rows_table(result, result.advisory_rows, color) if result.advisory_rows else []),
        ]
        out += [t for t in (content.not_contoured_text(result), content.advisory_verdict_text(result)) if t]
    if result.not_evaluated:
        out += ["", content.not_evaluated_sentence(result.not_evaluated)]
    if any(r.crosscheck is not None and r.crosscheck.flagged for r in result.rows):
        out += ["* the two DVH engines disagree on this row; it is judged on the more conservative value."]
    if result.messages:
        out += ["", *[f"- {m}" for m in result.messages]]
    return "\n".join(out)
