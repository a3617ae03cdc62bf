"""SlicerRT's DVH logic, inside desktop Slicer only: the one adapter to it.

Used to cross-check our engine (``protocol.crosscheck``). Settings follow what SlicerRT's maintainers
advise for fine metrics: start and step 0.01 Gy (never a start of 0), fixed oversampling (automatic
oversampling fails on binary-labelmap segments), a fresh parameter node per run, and the logic's global
settings restored afterwards.

Everything but ``slicerrt_metrics`` is plain Python, testable without Slicer: which segment each structure
is (``structure_segment_ids``), how a row of SlicerRT's metrics table becomes values in Gy
(``metrics_from_row``), and the fail-safe wrapper (``crosscheck_result``): the cross-check is a second
opinion, and when it cannot run the review keeps our engine's judgement with a "cross-check skipped" message.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Callable, Dict, Iterable, Mapping, Optional, Sequence, Tuple

from ..dose.grid import DOSE_UNITS_TO_GY

_COLUMN = re.compile(r"^(D\d+(?:\.\d+)?(?:cc|%)|V\d+(?:\.\d+)?)\s*\((.*)\)$")
_TRAILING_UNIT = re.compile(r"\(([^()]*)\)\s*$")
STEP_GY = 0.01  # DVH start and step, in Gy


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


def column_unit(name: str) -> Optional[str]:
    """The unit in a column name's trailing parentheses ('Mean dose (GY)' -> 'GY', 'D2% ()' -> ''); None when
    there are none ('Mean intensity': a volume without a dose unit)."""
    m = _TRAILING_UNIT.search(name)
    return m.group(1).strip() if m else None


def dose_in_gy(text, unit: Optional[str]) -> float:
    """A SlicerRT dose value in Gy. SlicerRT never converts: its values are the dose volume's own (after Dose Grid
    Scaling, ``LoadRtDose``), and its columns name that unit, the study's ``DicomRtImport.DoseUnitName``
    (``ComputeDMetrics`` L1386-1393, ``AssembleDoseMetricName`` L1944-1956; SlicerRT df6ef69). "(CGY)" is x0.01."""
    factor = DOSE_UNITS_TO_GY.get((unit or "").strip().upper())
    if factor is None:
        raise ValueError(f"SlicerRT reports this dose in '{unit or ''}', which is not a dose unit (GY or CGY).")
    return float(text) * factor


def metrics_from_row(
    column_names: Sequence[str], cell: Callable[[int], str], metrics: Iterable[str], stat_columns: Mapping[str, int]
) -> Dict[str, float]:
    """One segment's row of SlicerRT's metrics table -> {metric: value} for the ``metrics`` asked, doses in Gy.

    D columns are found by name (``D0.03cc (GY)``, ``D98% (GY)``); ``stat_columns`` maps Dmean/Dmax/Dmin to their
    fixed column (``vtkMRMLDoseVolumeHistogramNode::MetricColumnMeanDose``...), whose name may be translated but
    ends with the unit. V columns (cc or %) are returned as they are."""
    wanted = set(metrics)
    out = {}
    for col, name in enumerate(column_names):
        parsed = parse_metric_column(name)
        if parsed and parsed[0] in wanted:
            metric, unit = parsed
            out[metric] = dose_in_gy(cell(col), unit) if metric.startswith("D") else float(cell(col))
    for metric, col in stat_columns.items():
        if metric in wanted:
            out[metric] = dose_in_gy(cell(col), column_unit(column_names[col]))
    return out


def slicerrt_available() -> bool:
    try:
        import slicer

        return hasattr(slicer, "modules") and hasattr(slicer.modules, "dosevolumehistogram")
    except ImportError:
        return False


def slicerrt_metrics(
    scene, segmentation_node, dose_node, segment_ids: Mapping[str, str], metrics: Iterable[str]
) -> Dict[Tuple[str, str], float]:
    """Metrics in Gy of the given segments (structure name -> segment ID) from SlicerRT's DVH logic.

    Raises ValueError for an empty selection or an empty ID (SlicerRT would take every segment, or dereference a
    null segment: ``ComputeDvh``, .cxx L208-214, L236), and RuntimeError when SlicerRT's DVH fails."""
    import slicer

    from .volumes import dose_unit

    segment_ids = dict(segment_ids)
    if not segment_ids or not all(segment_ids.values()):
        raise ValueError("SlicerRT's DVH needs one segment ID per structure (none given, or an empty one).")
    unit = dose_unit(scene, dose_node)
    factor = DOSE_UNITS_TO_GY.get((unit or "").upper())
    if factor is None:
        raise ValueError(f"dose volume {dose_node.GetName()} has no dose unit (GY or CGY) on its study.")
    step = STEP_GY / factor  # start and step are in the dose volume's unit (.cxx L717-736)
    metrics = list(metrics)
    d_percent = sorted({m[1:-1] for m in metrics if m.startswith("D") and m.endswith("%")}, key=float)
    d_cc = sorted({m[1:-2] for m in metrics if m.startswith("D") and m.endswith("cc")}, key=float)
    logic = slicer.modules.dosevolumehistogram.logic()
    saved = (logic.GetStartValue(), logic.GetStepSize(), logic.GetDefaultDoseVolumeOversamplingFactor())
    events_disabled = logic.GetDisableModifiedEvent()
    before = {scene.GetNthNode(n).GetID() for n in range(scene.GetNumberOfNodes())}
    try:
        logic.SetStartValue(step)
        logic.SetStepSize(step)
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
        names = [table.GetColumnName(c) for c in range(table.GetNumberOfColumns())]
        stats = {"Dmean": node.MetricColumnMeanDose, "Dmax": node.MetricColumnMaxDose, "Dmin": node.MetricColumnMinDose}
        out = {}
        for structure, sid in segment_ids.items():
            dvh = table.GetNodeReference(node.AssembleDvhNodeReference(sid))
            if dvh is None:
                continue
            row = int(dvh.GetAttribute("DoseVolumeHistogram.TableRow"))
            values = metrics_from_row(names, lambda col, row=row: table.GetCellText(row, col), metrics, stats)
            out.update({(structure, metric): value for metric, value in values.items()})
        return out
    finally:
        logic.SetStartValue(saved[0])
        logic.SetStepSize(saved[1])
        logic.SetDefaultDoseVolumeOversamplingFactor(saved[2])
        # a failed ComputeDvh returns with the logic's modified events still disabled (.cxx L196, reset at L449)
        logic.SetDisableModifiedEvent(events_disabled)
        # remove what the computation added (parameter node, DVH and metrics tables)
        added = [scene.GetNthNode(n) for n in range(scene.GetNumberOfNodes())]
        for extra in [n for n in added if n.GetID() not in before]:
            scene.RemoveNode(extra)


def structure_segments(result) -> Dict[str, str]:
    """Protocol structure -> segment key in the reviewed segmentation (derived volumes keep their names)."""
    out = {role: seg for role, seg in result.resolution.segment_for_role.items() if seg is not None}
    out.update({name: name for name in result.volumes})
    return out


def structure_segment_ids(result, id_of_name: Callable[[str], str]) -> Dict[str, str]:
    """Protocol structure -> segment ID ("" when there is none): a role's segment by the ID it was read with (two
    segments may share a name), else by name through ``id_of_name``; a derived volume by its name."""
    infos = getattr(result.resolution, "structures", {}) or {}
    out = {}
    for structure, key in structure_segments(result).items():
        info = infos.get(key) if structure not in result.volumes else None
        out[structure] = (info.segment_id if info is not None and info.segment_id else "") or id_of_name(key) or ""
    return out


def crosscheck_result(result, segment_ids: Mapping[str, str], compute, engine: str = "SlicerRT"):
    """The review with the other engine's values on every row it could compute (``protocol.crosscheck``), the
    verdicts recomputed as the review computes them (its problems still stop a pass) and the cross-check's
    messages added. Never raises: when the check cannot run, the rows are our engine's."""
    from ..protocol.crosscheck import crosscheck_rows
    from ..protocol.evaluate import advisory_verdict, verdict

    rows, notes = crosscheck_rows(result.rows, segment_ids, compute, engine)
    return replace(
        result,
        rows=rows,
        verdict=verdict(rows, result.problems),
        advisory_verdict=advisory_verdict(rows, result.not_contoured),
        messages=list(result.messages) + [n for n in notes if n not in result.messages],
    )


def crosscheck_with_slicerrt(scene, segmentation_node, dose_node, result):
    """The review cross-checked by SlicerRT's DVH (``crosscheck_result``); the derived segments must already be in
    ``segmentation_node`` (``mrml.case.store_review``)."""

    def compute(segment_ids, metrics):
        return slicerrt_metrics(scene, segmentation_node, dose_node, segment_ids, metrics)

    ids = structure_segment_ids(result, segmentation_node.GetSegmentation().GetSegmentIdBySegmentName)
    return crosscheck_result(result, ids, compute)
