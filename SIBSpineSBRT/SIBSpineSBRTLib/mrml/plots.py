"""The DVH as an MRML plot chart (shown in Slicer's plot view), with the protocol's Dx limits as markers."""

from __future__ import annotations

from typing import Dict, Optional

import numpy as np

from ..dose.dvh import parse_metric
from ..review.pipeline import ReviewResult

CHART_NAME = "SIBSpineSBRT DVH"


def _table(scene, name: str, columns: Dict[str, np.ndarray]):
    import slicer
    from vtkmodules.util import numpy_support as nps

    table = scene.GetFirstNodeByName(name)
    if table is None or not table.IsA("vtkMRMLTableNode"):
        table = slicer.vtkMRMLTableNode()
        table.SetName(name)
        scene.AddNode(table)
    t = table.GetTable()
    t.Initialize()
    for col, values in columns.items():
        arr = nps.numpy_to_vtk(np.ascontiguousarray(values, dtype=np.float64), deep=True)
        arr.SetName(col)
        t.AddColumn(arr)
    table.Modified()
    return table


def _series(scene, name: str, table, x: str, y: str, color, markers: bool = False):
    import slicer

    series = scene.GetFirstNodeByName(name)
    if series is None or not series.IsA("vtkMRMLPlotSeriesNode"):
        series = slicer.vtkMRMLPlotSeriesNode()
        series.SetName(name)
        scene.AddNode(series)
    series.SetAndObserveTableNodeID(table.GetID())
    series.SetXColumnName(x)
    series.SetYColumnName(y)
    series.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter)
    series.SetColor(*color)
    if markers:
        series.SetLineStyle(slicer.vtkMRMLPlotSeriesNode.LineStyleNone)
        series.SetMarkerStyle(slicer.vtkMRMLPlotSeriesNode.MarkerStyleDiamond)
        series.SetMarkerSize(10)
    else:
        series.SetMarkerStyle(slicer.vtkMRMLPlotSeriesNode.MarkerStyleNone)
        series.SetLineWidth(3)
    return series


def write_dvh_chart(scene, result: ReviewResult, step_gy: Optional[float] = None):
    """(Re)build the DVH chart: one curve per evaluated structure (percent volume vs Gy) and one marker
    series per limit level (mandatory, optimal) at (limit dose, volume x) of each Dx constraint. The curves'
    dose step is ``ReviewResult.dvh_curves``' (bounded levels whatever the dose's magnitude)."""
    import slicer

    chart = scene.GetFirstNodeByName(CHART_NAME)
    if chart is None or not chart.IsA("vtkMRMLPlotChartNode"):
        chart = slicer.vtkMRMLPlotChartNode()
        chart.SetName(CHART_NAME)
        scene.AddNode(chart)
    chart.RemoveAllPlotSeriesNodeIDs()
    p = result.protocol
    for name, (dose, vol) in result.dvh_curves(step_gy).items():
        table = _table(scene, f"DVH {name}", {"Dose (Gy)": dose, "Volume (%)": vol})
        color = p.structures[name].color if name in p.structures else (0.5, 0.5, 0.5)
        chart.AddAndObservePlotSeriesNodeID(
            _series(scene, f"DVH {name}", table, "Dose (Gy)", "Volume (%)", color).GetID()
        )
    for level, color in (("mandatory", (0.83, 0.18, 0.18)), ("optimal", (0.18, 0.62, 0.25))):
        xs, ys = [], []
        for r in result.rows:
            spec = parse_metric(r.metric)
            limit = getattr(r.constraint, level)
            dvh = result.dvhs.get(r.structure)
            if spec.kind != "D" or limit is None or dvh is None:
                continue
            pct = spec.value if spec.relative else 100.0 * spec.value / dvh.evaluated_volume_cc
            for gy in (limit.target, limit.lower, limit.upper):
                if gy is not None:
                    xs.append(gy)
                    ys.append(pct)
        if xs:
            table = _table(scene, f"DVH limits {level}", {"Dose (Gy)": np.array(xs), "Volume (%)": np.array(ys)})
            series = _series(
                scene, f"{level.capitalize()} limits", table, "Dose (Gy)", "Volume (%)", color, markers=True
            )
            chart.AddAndObservePlotSeriesNodeID(series.GetID())
    chart.SetTitle(f"DVH: {result.case}")
    chart.SetXAxisTitle("Dose (Gy)")
    chart.SetYAxisTitle("Volume (%)")
    chart.SetLegendVisibility(True)
    return chart
