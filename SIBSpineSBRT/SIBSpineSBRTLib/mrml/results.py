"""Review results as MRML table nodes (shown in Slicer's table view and saved with the scene)."""

from __future__ import annotations

from ..protocol import evaluate as ev
from ..review.pipeline import ReviewResult

RESULTS_TABLE_NAME = "SIBSpineSBRT review"
COLUMNS = ("Structure", "Metric", "Value", "Unit", "Optimal", "Mandatory", "Status")


def write_results_table(scene, result: ReviewResult, node=None):
    """Fill the results table (``node``, else the scene's existing one, else a new one): one row per
    constraint; verdict, protocol and level as node attributes."""
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
        col = vtkDoubleArray() if name == "Value" else vtkStringArray()
        col.SetName(name)
        table.AddColumn(col)
    for r in result.rows:
        table.InsertNextBlankRow()
        row = table.GetNumberOfRows() - 1
        table.SetValue(row, 0, r.structure)
        table.SetValue(row, 1, r.metric)
        table.SetValue(row, 2, float("nan") if r.value is None else float(r.value))
        table.SetValue(row, 3, r.unit)
        table.SetValue(row, 4, r.optimal_text or "-")
        table.SetValue(row, 5, r.mandatory_text or "-")
        table.SetValue(row, 6, r.status)
    node.SetUseColumnTitleAsColumnHeader(True)
    node.SetAttribute("SIBSpineSBRT.Verdict", result.verdict)
    node.SetAttribute("SIBSpineSBRT.Protocol", result.protocol.id)
    node.SetAttribute("SIBSpineSBRT.Level", result.level)
    node.Modified()
    return node


def read_results_table(node):
    """Rows of a results table as dicts (used by tests and by a reopened scene)."""
    table = node.GetTable()
    rows = []
    for row in range(table.GetNumberOfRows()):
        values = {name: table.GetValueByName(row, name) for name in COLUMNS}
        rows.append(
            {
                "structure": values["Structure"].ToString(),
                "metric": values["Metric"].ToString(),
                "value": values["Value"].ToDouble(),
                "unit": values["Unit"].ToString(),
                "status": values["Status"].ToString(),
            }
        )
    return rows


STATUS_COLORS = {
    ev.OPTIMAL: (0.18, 0.65, 0.25),
    ev.ACCEPTABLE: (0.95, 0.75, 0.1),
    ev.FAIL: (0.85, 0.15, 0.15),
    ev.NOT_EVALUABLE: (0.55, 0.55, 0.55),
}
