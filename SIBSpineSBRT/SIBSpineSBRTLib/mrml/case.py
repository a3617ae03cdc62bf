"""A case in MRML: nodes in, ``CaseInput`` out; review results back into the scene.

Data flows one way: nodes -> arrays with geometry (``case_input_from_nodes``) -> ``review_case`` ->
new nodes/segments (``store_review``). Source segments and the dose node are never modified.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

from ..dose.grid import DoseError, DoseGrid
from ..geometry.grid import ImageGeometry
from ..review.pipeline import CaseInput, ReviewResult
from . import segmentations as segs
from .volumes import add_volume, dose_grid_from_node, mark_as_dose, transform_problem, volume_geometry


@dataclass
class CaseNodes:
    ct: object
    segmentation: object
    dose: Optional[object]
    mr: Optional[object] = None


def add_case_nodes(scene, case) -> CaseNodes:
    """Put an in-memory case (``phantoms.demo.DemoCase``) into the scene as Slicer would hold it:
    CT volume, a segmentation referencing the CT grid, and a dose volume marked as SlicerRT marks it."""
    ct = add_volume(scene, case.ct, case.ct_geometry, "CT")
    seg = segs.new_segmentation(scene, "Structures", case.ct_geometry)
    seg.SetNodeReferenceID(seg.GetReferenceImageGeometryReferenceRole(), ct.GetID())
    from ..geometry.masks import Mask

    for name, arr in case.segments.items():
        segs.add_source_segment(seg, Mask(arr, case.ct_geometry, name), name, case.colors.get(name, (0.5, 0.5, 0.5)))
    dose = add_volume(scene, case.dose_gy.astype("float32"), case.dose_geometry, "Dose")
    mark_as_dose(scene, dose, "GY")
    return CaseNodes(ct, seg, dose)


def case_input_from_nodes(
    scene,
    segmentation,
    dose=None,
    level: str = "",
    name: str = "",
    reference_volume=None,
    dose_unit: Optional[str] = None,
) -> CaseInput:
    """Read every segment (on the segmentation's reference geometry, or on ``reference_volume``'s grid)
    and the dose in Gy. A dose that cannot be read leaves the dose rows not evaluable, with the reason.

    The masks are keyed as ``segmentations.read_segments`` keys them (two segments of one name are two keys,
    never one) and remember each key's ROI number or segment ID, so the review's role matching can name the
    candidates of an ambiguous role."""
    problem = transform_problem(reference_volume, "reference volume") if reference_volume is not None else None
    if problem:
        raise ValueError(problem)
    geometry: ImageGeometry = (
        volume_geometry(reference_volume) if reference_volume is not None else segs.reference_geometry(segmentation)
    )
    masks = segs.read_segments(segmentation, geometry=geometry)
    dose_grid, problem = None, ""
    if dose is None:
        problem = "No dose volume was given: choose the plan's dose (RTDOSE) to evaluate the constraints."
    else:
        try:
            dose_grid = dose_grid_from_node(scene, dose, dose_unit)
        except DoseError as exc:
            from .storage import source_file

            where = source_file(dose)  # the file the dose was read from, when it was
            problem = f"{where}: {exc}" if where and where not in str(exc) else str(exc)
    return CaseInput(name or segmentation.GetName(), level, masks, dose_grid, problem)


def add_dose_node(scene, dose: DoseGrid, name: str = ""):
    """A new dose volume node (Gy, marked as SlicerRT marks doses) holding ``dose``; e.g. a what-if copy."""
    node = add_volume(scene, dose.array.astype("float32"), dose.geometry, name or dose.name)
    mark_as_dose(scene, node, "GY")
    return node


def store_review(scene, segmentation, result: ReviewResult) -> Dict[str, object]:
    """Write the planning volumes as derived segments (with recipe tags and protocol colours) and the
    results as a table node. Returns the nodes and segment IDs written."""
    from .results import write_results_table

    written = {}
    for name, volume in result.volumes.items():
        color = result.protocol.structures[name].color if name in result.protocol.structures else (0.5, 0.5, 0.5)
        written[name] = segs.write_derived_segment(segmentation, volume.mask, name, color, volume.recipe)
    written["table"] = write_results_table(scene, result)
    return written
