"""SlicerRT's DVH logic, inside desktop Slicer only: the one adapter to it.

Used to cross-check our engine (``protocol.crosscheck``). Settings follow what SlicerRT's maintainers
advise for fine metrics: start and step 0.01 Gy (never a start of 0), fixed oversampling (automatic
oversampling fails on binary-labelmap segments), a fresh parameter node per run, and the logic's global
settings restored afterwards.
"""

from __future__ import annotations

import re
from typing import Dict, Iterable, Mapping, Optional, Tuple

_COLUMN = re.compile(r"^(D\d+(?:\.\d+)?(?:cc|%)|V\d+(?:\.\d+)?)\s*\((.*)\)$")


def parse_metric_column(name: str) -> Optional[Tuple[str, str]]:
    """SlicerRT metric column -> (our metric name, its unit text), e.g. 'D0.03cc (GY)' -> ('D0.03cc', 'GY'),
    'V30 (cc)' -> ('V30Gy', 'cc'), 'V30 (%)' -> ('V30Gy%', '%'); None for other columns."""
    m = _COLUMN.match(name.strip())
    if not m:
        return None
    metric, unit = m.group(1), m.group(2)
    if metric.startswith("V"):
        return (metric + "Gy" + ("%" if unit == "%" else ""), unit)
    return metric, unit


def slicerrt_available() -> bool:
    try:
        import slicer

        return hasattr(slicer, "modules") and hasattr(slicer.modules, "dosevolumehistogram")
    except ImportError:
        return False


def slicerrt_metrics(
    scene, segmentation_node, dose_node, segment_ids: Mapping[str, str], metrics: Iterable[str]
) -> Dict[Tuple[str, str], float]:
    """Metrics of the given segments (structure name -> segment ID) from SlicerRT's DVH logic."""
    import slicer

    metrics = list(metrics)
    d_percent = sorted({m[1:-1] for m in metrics if m.startswith("D") and m.endswith("%")}, key=float)
    d_cc = sorted({m[1:-2] for m in metrics if m.startswith("D") and m.endswith("cc")}, key=float)
    logic = slicer.modules.dosevolumehistogram.logic()
    saved = (logic.GetStartValue(), logic.GetStepSize(), logic.GetDefaultDoseVolumeOversamplingFactor())
    before = {scene.GetNthNode(n).GetID() for n in range(scene.GetNumberOfNodes())}
    try:
        logic.SetStartValue(0.01)
        logic.SetStepSize(0.01)
        logic.SetDefaultDoseVolumeOversamplingFactor(2.0)
        node = scene.AddNewNodeByClass("vtkMRMLDoseVolumeHistogramNode")
        node.SetAndObserveDoseVolumeNode(dose_node)
        node.SetAndObserveSegmentationNode(segmentation_node)
        node.SetSelectedSegmentIDs(list(segment_ids.values()))
        node.SetAutomaticOversampling(False)
        error = logic.ComputeDvh(node)
        if error:
            raise RuntimeError(f"SlicerRT DVH: {error}")
        node.SetDVolumeValuesPercent(",".join(d_percent))
        node.SetDVolumeValuesCc(",".join(d_cc))
        node.SetShowDMetrics(True)
        logic.ComputeDMetrics(node)
        table = node.GetMetricsTableNode()
        columns = {c: parse_metric_column(table.GetColumnName(c)) for c in range(table.GetNumberOfColumns())}
        out = {}
        for structure, sid in segment_ids.items():
            dvh = table.GetNodeReference(node.AssembleDvhNodeReference(sid))
            if dvh is None:
                continue
            row = int(dvh.GetAttribute("DoseVolumeHistogram.TableRow"))
            for col, parsed in columns.items():
                if parsed and parsed[0] in metrics:
                    out[(structure, parsed[0])] = float(table.GetCellText(row, col))
            for metric, col in (
                ("Dmean", node.MetricColumnMeanDose),
                ("Dmax", node.MetricColumnMaxDose),
                ("Dmin", node.MetricColumnMinDose),
            ):
                if metric in metrics:
                    out[(structure, metric)] = float(table.GetCellText(row, col))
        return out
    finally:
        logic.SetStartValue(saved[0])
        logic.SetStepSize(saved[1])
        logic.SetDefaultDoseVolumeOversamplingFactor(saved[2])
        # remove what the computation added (parameter node, DVH and metrics tables)
        added = [scene.GetNthNode(n) for n in range(scene.GetNumberOfNodes())]
        for extra in [n for n in added if n.GetID() not in before]:
            scene.RemoveNode(extra)


def structure_segments(result) -> Dict[str, str]:
    """Protocol structure -> segment name in the reviewed segmentation (derived volumes keep their names)."""
    out = {role: seg for role, seg in result.resolution.segment_for_role.items() if seg is not None}
    out.update({name: name for name in result.volumes})
    return out


def crosscheck_with_slicerrt(scene, segmentation_node, dose_node, result):
    """The review with SlicerRT's values attached to every row it could compute (see protocol.crosscheck);
    the derived segments must already be in ``segmentation_node`` (``mrml.case.store_review``)."""
    from dataclasses import replace

    from ..protocol.crosscheck import apply_crosscheck
    from ..protocol.evaluate import verdict

    names = structure_segments(result)
    wanted = {r.structure for r in result.rows if r.value is not None and r.structure in names}
    seg = segmentation_node.GetSegmentation()
    ids = {s: seg.GetSegmentIdBySegmentName(names[s]) for s in wanted}
    other = slicerrt_metrics(scene, segmentation_node, dose_node, ids, {r.metric for r in result.rows})
    rows = apply_crosscheck(result.rows, other, "SlicerRT")
    return replace(result, rows=rows, verdict=verdict(rows))
