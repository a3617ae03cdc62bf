"""Planning volumes of a DICOM case out: an RTSTRUCT for the planning system (``.dcm``) or a Slicer
segmentation (``.seg.nrrd``), chosen by the output name; and the whole ``sibspine volumes --dicom`` step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional

from .case_loader import DicomCase, load_dicom_case
from .errors import ExportError
from .rtstruct_write import RoiToWrite, contours_from_structure, default_interpreted_type, write_rtstruct

RTSTRUCT_SUFFIXES = (".dcm",)
SEGMENTATION_SUFFIX = ".seg.nrrd"


def output_kind(out) -> str:
    """ "rtstruct" for a name ending in .dcm, "segmentation" for .seg.nrrd; anything else is an ExportError."""
    name = str(out).lower()
    if name.endswith(SEGMENTATION_SUFFIX):
        return "segmentation"
    if name.endswith(RTSTRUCT_SUFFIXES):
        return "rtstruct"
    raise ExportError(
        f"Output {out}: name it *.dcm for an RTSTRUCT (for the planning system) or *.seg.nrrd for a Slicer "
        "segmentation."
    )


def _mask_and_recipe(volume):
    mask = getattr(volume, "mask", volume)
    return mask, str(getattr(volume, "recipe", "") or "")


def _polygons(volume, geometry):
    """The slice polygons of a volume built on contours (its sections on the CT slices), else None (traced)."""
    on_slices = getattr(volume, "slice_contours", None)
    return None if on_slices is None else contours_from_structure(on_slices, geometry)


def write_planning_volumes(
    case: DicomCase,
    volumes: Mapping[str, object],
    out,
    colors: Optional[Mapping[str, tuple]] = None,
    keep_source: Optional[List[str]] = None,
) -> Path:
    """Write ``volumes`` (name -> ``PlanningVolume`` or ``Mask``, on the CT grid) for ``case``.

    * ``out`` ending in ``.dcm``: an RTSTRUCT referencing the planning CT, holding the case's own ROIs copied
      verbatim (all, or ``keep_source``) followed by the volumes: a volume built on the ROIs' contours as its
      polygons on the CT slices (smooth, no staircase), a volume built on voxels traced on the CT slices;
    * ``out`` ending in ``.seg.nrrd``: the case's segmentation with the volumes written as derived segments
      (tagged with their recipe), saved in Slicer's format.
    """
    kind = output_kind(out)
    colors = dict(colors or {})
    if kind == "rtstruct":
        rois = []
        for name, volume in volumes.items():
            mask, recipe = _mask_and_recipe(volume)
            rois.append(
                RoiToWrite(
                    name=name,
                    mask=mask,
                    color=tuple(colors.get(name, (0.5, 0.5, 0.5))),
                    interpreted_type=default_interpreted_type(name),
                    description=recipe,
                    polygons=_polygons(volume, case.ct_series.geometry),
                )
            )
        return write_rtstruct(out, case.ct_series, rois, source=case.structure_set, keep_source=keep_source)

    from ..mrml import segmentations as segs
    from ..mrml import storage

    seg = case.segmentation
    if seg is None:
        seg = segs.new_segmentation(case.scene, "Structures", case.ct_series.geometry)
        seg.SetNodeReferenceID(seg.GetReferenceImageGeometryReferenceRole(), case.ct.GetID())
        case.segmentation = seg
    for name, volume in volumes.items():
        mask, recipe = _mask_and_recipe(volume)
        segs.write_derived_segment(seg, mask, name, colors.get(name, (0.5, 0.5, 0.5)), recipe)
    return Path(storage.save_segmentation(case.scene, seg, out))


@dataclass
class VolumesResult:
    """What ``volumes_from_dicom`` did: the file written, the volumes built, why others were not."""

    path: Optional[Path]
    case: DicomCase
    volumes: Dict[str, object]
    problems: Dict[str, str]
    messages: List[str] = field(default_factory=list)


def volumes_from_dicom(
    case_dir,
    level: str,
    out,
    scene=None,
    protocol=None,
    role_overrides: Optional[Mapping[str, str]] = None,
    ptv_margins=None,
    prv_margin_mm: Optional[float] = None,
) -> VolumesResult:
    """``sibspine volumes --dicom CASE_DIR --level L --out OUT``: load the case, build PTV, PTV_Eval and
    SpinalCord_PRV02 from its ROIs (matched to protocol roles by name/alias, or ``role_overrides``), and write
    them (see ``write_planning_volumes``). When a volume cannot be built, ``problems`` says why (naming the
    missing segment and the segments found) and nothing is written.
    """
    from ..mrml import segmentations as segs
    from ..mrml.scene import new_scene
    from ..protocol.model import load_protocol
    from ..review.planning_volumes import contour_structures, plan_volumes

    output_kind(out)  # fail before any work on a bad output name
    protocol = protocol if protocol is not None and not isinstance(protocol, str) else load_protocol(protocol)
    ctx = scene if scene is not None else new_scene()
    case = load_dicom_case(case_dir, ctx, load_mr=False, on_dose_error="record")
    if case.segmentation is None:
        raise ExportError(
            f"{case_dir}: no RTSTRUCT in the case folder, so there is no CTV or spinal cord to build volumes from. "
            "Export the structure set with the planning CT."
        )
    masks = segs.read_segments(case.segmentation, geometry=case.ct_series.geometry)
    contours, notes = contour_structures(case.contours, set(masks))  # one geometry per source: the ROIs' contours
    case.messages.extend(notes)
    planned = plan_volumes(protocol, masks, level, role_overrides, ptv_margins, prv_margin_mm, contours)
    problems = {n: planned.problem_message(protocol, n) for n in planned.problems}
    colors = {n: protocol.structures[n].color for n in planned.volumes if n in protocol.structures}
    path = write_planning_volumes(case, planned.volumes, out, colors) if planned.volumes and not problems else None
    return VolumesResult(path, case, dict(planned.volumes), problems, list(case.messages))
