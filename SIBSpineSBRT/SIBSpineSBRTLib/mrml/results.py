"""Review results as an MRML table node: shown in Slicer's table view, saved with the scene, and read back
by the module panel when a scene is reopened (the one stored copy of the review's outcome).

One row per constraint: "Value" is the value as judged and shown (rounded to the row's reporting precision,
with its unit), "Exact value" the unrounded number; "Advisory" is "yes" for an unconfirmed local default
(it never decides the verdict). The review-level facts are node attributes: the verdict (over the protocol
rows), the advisory verdict, the deviations (a NON-PROTOCOL review when there are any), the problems that stop
a pass, the organs not contoured, the segments not evaluated and the messages. ``results_panel`` turns a stored
table into what the module panel shows, so the panel only binds it to widgets."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Dict, List, Optional, Tuple

from ..dose.radiobiology import metric_radiobiology
from ..report import content
from ..report.status_style import STATUS_HEX, STATUS_LABEL, VERDICT_HEX
from ..review.pipeline import ReviewResult

RESULTS_TABLE_NAME = "SIBSpineSBRT review"
COLUMNS = (
    "Structure",
    "Metric",
    "Value",
    "Exact value",
    "Precision",
    "Unit",
    "EQD2",
    "Optimal",
    "Mandatory",
    "Status",
    "Advisory",
    "SlicerRT",
    "Note",
    "Source",
)
_NUMERIC = {"Exact value", "Precision", "EQD2", "SlicerRT"}
ATTRIBUTE = "SIBSpineSBRT."
MESSAGES_ATTRIBUTE = ATTRIBUTE + "Messages"
#: node attribute -> ReviewResult list field, stored one item per line
_LIST_ATTRIBUTES = {
    "Deviations": "deviations",
    "Problems": "problems",
    "NotContoured": "not_contoured",
    "NotEvaluated": "not_evaluated",
    "Messages": "messages",
}
#: the columns of the panel's two tables (the note is the rows' tooltip)
PANEL_COLUMNS = ("Structure", "Metric", "Value", "EQD2", "Optimal", "Mandatory", "Status", "SlicerRT", "Source")


def write_results_table(scene, result: ReviewResult, node=None):
    """Fill the results table (``node``, else the scene's existing one, else a new one): one row per
    constraint; the review-level facts as node attributes."""
    import slicer
    from vtkmodules.vtkCommonCore import vtkDoubleArray, vtkStringArray

    if node is None:
        existing = scene.GetFirstNodeByName(RESULTS_TABLE_NAME)
        node = existing if existing is not None and existing.IsA("vtkMRMLTableNode") else None
    if node is None:
        node = slicer.vtkMRMLTableNode()
        node.SetName(RESULTS_TABLE_NAME)
        scene.AddNode(node)
    table = node.GetTable()
    table.Initialize()
    for name in COLUMNS:
        col = vtkDoubleArray() if name in _NUMERIC else vtkStringArray()
        col.SetName(name)
        table.AddColumn(col)
    p = result.protocol
    nan = float("nan")
    for r in result.rows:
        role = p.structures.get(r.structure)
        rb = metric_radiobiology(r.metric, r.value, p.fractions, role.alpha_beta_gy if role else None)
        values = {
            "Structure": r.structure,
            "Metric": r.metric,
            "Value": r.value_text,
            "Exact value": nan if r.value is None else float(r.value),
            "Precision": float(r.constraint.precision),
            "Unit": r.unit,
            "EQD2": nan if rb is None else rb["eqd2_gy"],
            "Optimal": r.optimal_text or "-",
            "Mandatory": r.mandatory_text or "-",
            "Status": r.status,
            "Advisory": "yes" if r.advisory else "no",
            "SlicerRT": nan if r.crosscheck is None else r.crosscheck.value,
            "Note": r.message or r.constraint.note,
            "Source": r.constraint.source or f"protocol {p.id}",
        }
        table.InsertNextBlankRow()
        row = table.GetNumberOfRows() - 1
        for col, name in enumerate(COLUMNS):
            table.SetValue(row, col, values[name])
    node.SetUseColumnTitleAsColumnHeader(True)
    for name in ("EQD2", "SlicerRT"):
        node.SetColumnUnitLabel(name, "Gy")
    node.SetAttribute(ATTRIBUTE + "Verdict", result.verdict)
    node.SetAttribute(ATTRIBUTE + "AdvisoryVerdict", result.advisory_verdict or "")
    node.SetAttribute(ATTRIBUTE + "Protocol", p.id)
    node.SetAttribute(ATTRIBUTE + "Level", result.level)
    for attribute, name in _LIST_ATTRIBUTES.items():
        node.SetAttribute(ATTRIBUTE + attribute, "\n".join(getattr(result, name)))
    node.Modified()
    return node


def _text(v: float, unit: str = "", decimals: int = 2) -> str:
    return "-" if v is None or math.isnan(v) else f"{v:.{decimals}f}{' ' + unit if unit else ''}"


def read_results_table(node) -> List[Dict[str, object]]:
    """Rows of a results table as dicts, with display texts (used by the panel and the tests). A table stored
    before the "Exact value" column existed (value as a number) is read too: every row then counts as a
    protocol row."""
    table = node.GetTable()
    names = {table.GetColumnName(i) for i in range(table.GetNumberOfColumns())}

    def get(row: int, name: str, default=None):
        return table.GetValueByName(row, name) if name in names else default

    rows = []
    for row in range(table.GetNumberOfRows()):
        unit = get(row, "Unit").ToString()
        if "Exact value" in names:
            value = get(row, "Exact value").ToDouble()
            value_text = get(row, "Value").ToString()
        else:  # an older table: the value is the number, shown at two decimals
            value = get(row, "Value").ToDouble()
            value_text = _text(value, unit)
        eqd2 = get(row, "EQD2").ToDouble()
        other = get(row, "SlicerRT").ToDouble()
        advisory = get(row, "Advisory")
        source = get(row, "Source")
        rows.append(
            {
                "structure": get(row, "Structure").ToString(),
                "metric": get(row, "Metric").ToString(),
                "value": value,
                "unit": unit,
                "value_text": value_text,
                "eqd2_text": _text(eqd2, "Gy", 1),
                "optimal": get(row, "Optimal").ToString(),
                "mandatory": get(row, "Mandatory").ToString(),
                "status": get(row, "Status").ToString(),
                "advisory": advisory is not None and advisory.ToString() == "yes",
                "crosscheck_text": "-" if math.isnan(other) else f"{other:.2f} ({other - value:+.2f})",
                "note": get(row, "Note").ToString(),
                "source": "" if source is None else source.ToString(),
            }
        )
    return rows


@dataclass(frozen=True)
class StoredReview:
    """The review-level facts stored on a results table."""

    verdict: str
    messages: List[str] = field(default_factory=list)
    advisory_verdict: Optional[str] = None
    deviations: List[str] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)
    not_contoured: List[str] = field(default_factory=list)
    not_evaluated: List[str] = field(default_factory=list)
    protocol: str = ""
    level: str = ""

    @property
    def non_protocol(self) -> bool:
        return bool(self.deviations)


def results_verdict(node) -> StoredReview:
    """The verdict, the NON-PROTOCOL deviations and the other review-level facts stored on a results table."""

    def lines(attribute: str) -> List[str]:
        text = node.GetAttribute(ATTRIBUTE + attribute) or ""
        return [line for line in text.split("\n") if line]

    return StoredReview(
        verdict=node.GetAttribute(ATTRIBUTE + "Verdict") or "-",
        messages=lines("Messages"),
        advisory_verdict=node.GetAttribute(ATTRIBUTE + "AdvisoryVerdict") or None,
        deviations=lines("Deviations"),
        problems=lines("Problems"),
        not_contoured=lines("NotContoured"),
        not_evaluated=lines("NotEvaluated"),
        protocol=node.GetAttribute(ATTRIBUTE + "Protocol") or "",
        level=node.GetAttribute(ATTRIBUTE + "Level") or "",
    )


# -- what the module panel shows ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PanelRow:
    cells: Tuple[str, ...]  # in PANEL_COLUMNS order
    status: str
    status_hex: str  # the status cell's fill (lighter for an advisory row)
    tooltip: str


@dataclass(frozen=True)
class ResultsPanel:
    """Everything the module panel shows of a stored review, as texts and colours."""

    verdict: str
    verdict_text: str
    verdict_hex: str
    non_protocol_text: str  # "" for a protocol review
    problems_text: str
    protocol_rows: List[PanelRow]
    advisory_text: str  # the advisory section's heading and rule ("" when there is no advisory section)
    advisory_rows: List[PanelRow]
    advisory_summary: str  # the advisory verdict and the organs not contoured
    not_evaluated_text: str
    messages_text: str
    protocol_heading: str = content.protocol_heading()
    columns: Tuple[str, ...] = PANEL_COLUMNS
    non_protocol_hex: str = content.NON_PROTOCOL_HEX
    problem_hex: str = content.PROBLEM_HEX
    advisory_hex: str = content.ADVISORY_HEX


def _panel_row(r: Dict[str, object]) -> PanelRow:
    status = str(r["status"])
    cells = (
        r["structure"],
        r["metric"],
        r["value_text"],
        r["eqd2_text"],
        r["optimal"],
        r["mandatory"],
        STATUS_LABEL.get(status, status),
        r["crosscheck_text"],
        r["source"],
    )
    fill = STATUS_HEX.get(status, "#8c8c8c")
    tooltip = "\n".join(t for t in (r["note"], r["source"]) if t)
    return PanelRow(tuple(str(c) for c in cells), status, content.lighter(fill) if r["advisory"] else fill, tooltip)


def results_panel(node) -> ResultsPanel:
    """What the module panel shows of the results table ``node``: the verdict over the protocol rows with the
    NON-PROTOCOL banner and the problems beside it, the protocol limits, the local defaults to confirm (apart),
    the segments not evaluated and the messages."""
    rows = read_results_table(node)
    stored = results_verdict(node)
    protocol_rows = [r for r in rows if not r["advisory"]]
    advisory_rows = [r for r in rows if r["advisory"]]
    statuses = [SimpleNamespace(status=r["status"]) for r in protocol_rows]
    non_protocol = ""
    if stored.non_protocol:
        title = content.non_protocol_title(stored.protocol) if stored.protocol else content.NON_PROTOCOL
        non_protocol = "\n".join([title, *(f"\u2022 {d}" for d in stored.deviations)])
    problems = ""
    if stored.problems:
        problems = "\n".join([content.problems_heading(stored.verdict), *(f"\u2022 {m}" for m in stored.problems)])
    has_advisory = bool(advisory_rows or stored.not_contoured)
    summary = [
        content.advisory_verdict_sentence(
            stored.advisory_verdict, [SimpleNamespace(status=r["status"]) for r in advisory_rows]
        ),
        content.not_contoured_sentence(stored.level, stored.not_contoured),
    ]
    shown_messages = [m for m in stored.messages if m not in stored.problems]
    return ResultsPanel(
        verdict=stored.verdict,
        verdict_text=content.verdict_sentence(stored.verdict, statuses, stored.non_protocol),
        verdict_hex=VERDICT_HEX.get(stored.verdict, "#8c8c8c"),
        non_protocol_text=non_protocol,
        problems_text=problems,
        protocol_rows=[_panel_row(r) for r in protocol_rows],
        advisory_text=f"{content.ADVISORY_HEADING}\n{content.ADVISORY_NOTE}" if has_advisory else "",
        advisory_rows=[_panel_row(r) for r in advisory_rows],
        advisory_summary="\n".join(t for t in summary if t),
        not_evaluated_text=content.not_evaluated_sentence(stored.not_evaluated) or "",
        messages_text="\n".join(shown_messages),
    )
