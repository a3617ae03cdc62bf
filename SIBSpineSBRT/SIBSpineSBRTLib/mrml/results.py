"""Review results as an MRML table node: shown in Slicer's table view, saved with the scene, and read back
by the module panel when a scene is reopened (the one stored copy of the review's outcome)."""

from __future__ import annotations

import math
from typing import Dict, List, Tuple

from ..dose.radiobiology import metric_radiobiology
from ..review.pipeline import ReviewResult

RESULTS_TABLE_NAME = "SIBSpineSBRT review"
COLUMNS = ("Structure", "Metric", "Value", "Unit", "EQD2", "Optimal", "Mandatory", "Status", "SlicerRT", "Note")
_NUMERIC = {"Value", "EQD2", "SlicerRT"}
MESSAGES_ATTRIBUTE = "SIBSpineSBRT.Messages"


def write_results_table(scene, result: ReviewResult, node=None):
    """Fill the results table (``node``, else the scene's existing one, else a new one): one row per
    constraint; verdict, protocol, level and messages as node attributes."""
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
        note = r.message or r.constraint.note
        source = r.constraint.source + ("" if r.constraint.confirmed else " (default: confirm locally)")
        values = {
            "Structure": r.structure,
            "Metric": r.metric,
            "Value": nan if r.value is None else float(r.value),
            "Unit": r.unit,
            "EQD2": nan if rb is None else rb["eqd2_gy"],
            "Optimal": r.optimal_text or "-",
            "Mandatory": r.mandatory_text or "-",
            "Status": r.status,
            "SlicerRT": nan if r.crosscheck is None else r.crosscheck.value,
            "Note": f"{note} [{source}]" if source else note,
        }
        table.InsertNextBlankRow()
        row = table.GetNumberOfRows() - 1
        for col, name in enumerate(COLUMNS):
            table.SetValue(row, col, values[name])
    node.SetUseColumnTitleAsColumnHeader(True)
    for name in ("EQD2", "SlicerRT"):
        node.SetColumnUnitLabel(name, "Gy")
    node.SetAttribute("SIBSpineSBRT.Verdict", result.verdict)
    node.SetAttribute("SIBSpineSBRT.Protocol", p.id)
    node.SetAttribute("SIBSpineSBRT.Level", result.level)
    node.SetAttribute(MESSAGES_ATTRIBUTE, "\n".join(result.messages))
    node.Modified()
    return node


def _text(v: float, unit: str = "") -> str:
    return "-" if v is None or math.isnan(v) else f"{v:.2f}{' ' + unit if unit else ''}"


def read_results_table(node) -> List[Dict[str, object]]:
    """Rows of a results table as dicts, with display texts (used by the panel and the tests)."""
    table = node.GetTable()
    rows = []
    for row in range(table.GetNumberOfRows()):
        v = {name: table.GetValueByName(row, name) for name in COLUMNS}
        value = v["Value"].ToDouble()
        eqd2 = v["EQD2"].ToDouble()
        other = v["SlicerRT"].ToDouble()
        unit = v["Unit"].ToString()
        rows.append(
            {
                "structure": v["Structure"].ToString(),
                "metric": v["Metric"].ToString(),
                "value": value,
                "unit": unit,
                "value_text": _text(value, unit),
                "eqd2_text": _text(eqd2, "Gy"),
                "optimal": v["Optimal"].ToString(),
                "mandatory": v["Mandatory"].ToString(),
                "status": v["Status"].ToString(),
                "crosscheck_text": "-" if math.isnan(other) else f"{other:.2f} ({other - value:+.2f})",
                "note": v["Note"].ToString(),
            }
        )
    return rows


def results_verdict(node) -> Tuple[str, str]:
    """(verdict, messages) stored on a results table."""
    return node.GetAttribute("SIBSpineSBRT.Verdict") or "-", node.GetAttribute(MESSAGES_ATTRIBUTE) or ""
