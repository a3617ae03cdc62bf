"""The decisions of a DICOM-RT load in desktop Slicer, as library code testable with slicer-core.

``caseio.slicer_dicom`` drives Slicer's DICOM database and SlicerRT; everything it decides is here:

* ``choose_case_objects``: which CT, MR, structure set, dose and plan (pydicom, the same choices, errors and
  recorded dose problems as ``case_loader.load_dicom_case``);
* ``load_requests``: what to hand to which DICOM plugin. Image series go by series to Slicer's scalar-volume
  plugin; each RT object goes as its own file to SlicerRT's RT plugin, so a series holding several RTDOSE
  objects loads only the chosen one (SlicerRT makes one loadable per file and records no instance UID on the
  dose it loads, ``vtkSlicerDicomRtImportExportModuleLogic.cxx`` ``ExamineForLoad``/``LoadRtDose``);
* ``case_from_loaded_nodes``: the nodes each request gave, turned into the ``DicomCase`` the review takes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence, Tuple

from .case_loader import (
    FRAME_ATTRIBUTE,
    PLAN_SUMMATION_TYPES,
    ROI_NUMBER_TAG,
    ROI_TYPE_TAG,
    SERIES_UID_ATTRIBUTE,
    DicomCase,
    _check_frame,
    _choose_dose,
    _choose_plan,
    choose_ct_and_structures,
)
from .dicom_image import ImageSeries
from .dicom_scan import DicomFile, DicomScan, ImageSeriesFiles, scan_folder
from .errors import AmbiguousSeriesError, CaseIOError, FrameOfReferenceError, MissingSeriesError, RTDoseError
from .rtdose import RTDose, read_rtdose
from .rtplan import Prescription, read_rtplan
from .rtstruct_read import StructureSet, roi_keys

SCALAR_VOLUME_PLUGIN = "DICOMScalarVolumePlugin"  # DICOMScalarVolumePlugin.py (Slicer 5.6.2 L942, HEAD L985)
RT_PLUGIN = "DicomRtImportExportPlugin"  # SlicerRT DicomRtImportExportPlugin.py L166
#: What SlicerRT sets (SlicerRtCommon/vtkSlicerRtCommon.cxx L64-75).
DOSE_VOLUME_ATTRIBUTE = "DicomRtImport.DoseVolume"
SLICERRT_ROI_NUMBER_TAG = "DicomRtImport.RoiNumber"
PLANAR_CONTOUR = "Planar contour"  # SlicerRT's representation, the source after its RTSTRUCT import


@dataclass
class CaseSelection:
    """What a case folder's load will bring in: the chosen objects, read with pydicom, and the messages so far."""

    scan: DicomScan
    ct_files: ImageSeriesFiles
    ct_series: ImageSeries
    mr_files: List[ImageSeriesFiles] = field(default_factory=list)
    structure_set_file: Optional[DicomFile] = None
    structure_set: Optional[StructureSet] = None
    dose_file: Optional[DicomFile] = None
    rtdose: Optional[RTDose] = None
    dose_problem: str = ""
    plan_file: Optional[DicomFile] = None
    prescription: Optional[Prescription] = None
    messages: List[str] = field(default_factory=list)


def choose_case_objects(
    folder,
    ct_series_uid: Optional[str] = None,
    structure_set_uid: Optional[str] = None,
    dose_uid: Optional[str] = None,
    on_dose_error: str = "record",
) -> CaseSelection:
    """Scan ``folder`` and choose the case's objects as ``load_dicom_case`` does. A dose that cannot be used (no
    DoseUnits, only per-beam doses, two plan doses...) is recorded in ``dose_problem`` and ``messages`` with
    ``on_dose_error="record"`` (the default) and raised with "raise"; a dose on another frame always raises."""
    if on_dose_error not in ("raise", "record"):
        raise ValueError("on_dose_error must be 'raise' or 'record'.")
    messages: List[str] = []
    scan = scan_folder(folder)
    messages.extend(scan.problems())
    ss_file, structure_set, planning, ct = choose_ct_and_structures(scan, ct_series_uid, structure_set_uid, messages)
    dose_file, rtdose, dose_problem = None, None, ""
    try:
        dose_file = _choose_dose(scan, dose_uid)
        if dose_file is not None:
            _check_frame("dose", dose_file.path, dose_file.frame_of_reference_uid, ct)
            rtdose = read_rtdose(dose_file.path)
            if rtdose.summation_type not in PLAN_SUMMATION_TYPES:
                messages.append(
                    f"{dose_file.path}: Dose Summation Type is {rtdose.summation_type or 'not stated'}, not PLAN; it "
                    "is used as the dose to review because it is the only dose in the folder. Check that "
                    "it is the plan's total dose."
                )
    except FrameOfReferenceError:
        raise
    except (RTDoseError, AmbiguousSeriesError, CaseIOError) as exc:
        if on_dose_error == "raise":
            raise
        dose_file, rtdose, dose_problem = None, None, str(exc)
        messages.append(dose_problem)
    plan_file, prescription = _choose_plan(scan, rtdose, messages), None
    if plan_file is not None:
        if plan_file.frame_of_reference_uid:
            _check_frame("plan", plan_file.path, plan_file.frame_of_reference_uid, ct)
        try:
            prescription = read_rtplan(plan_file.path)
            messages.extend(prescription.notes)
        except CaseIOError as exc:
            messages.append(str(exc))
            plan_file = None
    mr_files = [s for s in scan.image_series("MR") if s.series_uid != planning.series_uid]
    for s in scan.image_series():
        if s.series_uid != planning.series_uid and s.modality != "MR":
            messages.append(f"{s.label()} ({len(s.files)} files) is not the planning CT and was not loaded.")
    return CaseSelection(
        scan=scan,
        ct_files=planning,
        ct_series=ct,
        mr_files=mr_files,
        structure_set_file=ss_file,
        structure_set=structure_set,
        dose_file=dose_file,
        rtdose=rtdose,
        dose_problem=dose_problem,
        plan_file=plan_file,
        prescription=prescription,
        messages=messages,
    )


@dataclass(frozen=True)
class LoadRequest:
    """One load through one DICOM plugin: ``role`` is CT, MR, RTSTRUCT, RTDOSE or RTPLAN."""

    role: str
    series_uid: str
    files: Tuple[str, ...]
    plugin: str


def load_requests(
    selection: CaseSelection,
    files_for_series: Callable[[str], Sequence[str]],
    file_for_instance: Callable[[str], str],
) -> List[LoadRequest]:
    """What to load, in order (the CT first: SlicerRT takes a structure set's geometry from its CT when that is
    loaded, ``LoadRtStructureSet``). Files are named as the DICOM database knows them (``filesForSeries``,
    ``fileForInstance`` of ``ctkDICOMDatabase``), else as scanned."""
    out = []
    for role, series in [("CT", selection.ct_files)] + [("MR", s) for s in selection.mr_files]:
        files = tuple(str(f) for f in files_for_series(series.series_uid)) or tuple(str(f.path) for f in series.files)
        out.append(LoadRequest(role, series.series_uid, files, SCALAR_VOLUME_PLUGIN))
    for role, f in (
        ("RTSTRUCT", selection.structure_set_file),
        ("RTDOSE", selection.dose_file),
        ("RTPLAN", selection.plan_file),
    ):
        if f is not None:
            file = file_for_instance(f.sop_instance_uid) or f.path
            out.append(LoadRequest(role, f.series_uid, (str(file),), RT_PLUGIN))
    return out


def use_labelmap_source(segmentation_node, ct_node) -> None:
    """Make a segmentation from SlicerRT's RTSTRUCT import a binary-labelmap segmentation on the CT grid.

    SlicerRT makes "Planar contour" its source representation (``LoadRtStructureSet``, around L1685). Segments
    written later as labelmaps (PTV, PTV_Eval, the cord PRV) would then have empty planar contours: SlicerRT's
    DVH rebuilds every labelmap from the source (``ComputeDvh``: ``CreateRepresentation(..., alwaysConvert=true)``)
    and gets nothing for them, the display shows the empty closed surface made from them, and saving writes only
    the source. So the labelmap is made from the contours on the CT grid and becomes the source
    (``SetSourceRepresentationToBinaryLabelmap``, Slicer 5.6-main; it drops the other representations,
    ``vtkSegmentation::SetSourceRepresentationName``). The raw contours stay in ``DicomCase.contours``.
    """
    segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(ct_node)
    if not segmentation_node.CreateBinaryLabelmapRepresentation():
        raise MissingSeriesError(
            f"Slicer could not make binary labelmaps from the structure set {segmentation_node.GetName()}."
        )
    segmentation_node.SetSourceRepresentationToBinaryLabelmap()


def _tag(segment, tag: str) -> str:
    from vtkmodules.vtkCommonCore import reference

    value = reference("")
    return str(value) if segment.GetTag(tag, value) else ""


def _copy_roi_tags(segmentation_node, structure_set: StructureSet) -> None:
    """SlicerRT's ROI-number tag copied to this library's (and the ROI type added), so that two ROIs of one name
    keep apart (``mrml.segmentations.segment_keys``) as they do outside Slicer."""
    types = {str(r.number): r.interpreted_type for r in structure_set.rois}
    seg = segmentation_node.GetSegmentation()
    for n in range(seg.GetNumberOfSegments()):
        segment = seg.GetNthSegment(n)
        number = _tag(segment, SLICERRT_ROI_NUMBER_TAG)
        if number:
            segment.SetTag(ROI_NUMBER_TAG, number)
            if types.get(number):
                segment.SetTag(ROI_TYPE_TAG, types[number])


def _only(nodes, cls: str, request: LoadRequest, what: str, attribute: str = ""):
    found = [n for n in nodes if n.IsA(cls) and (not attribute or n.GetAttribute(attribute))]
    if len(found) != 1:
        raise MissingSeriesError(
            f"Slicer loaded {len(found)} {what}s from {', '.join(request.files[:1])}"
            f"{' and more' if len(request.files) > 1 else ''} ({request.role}); expected one."
        )
    return found[0]


def case_from_loaded_nodes(scene, selection: CaseSelection, loaded: Sequence[Tuple[LoadRequest, list]]) -> DicomCase:
    """The ``DicomCase`` of the nodes each request loaded (``loaded``: (request, nodes added by it) pairs).

    Node attributes the review reads are set from the DICOM files as read by pydicom: the series UID and the
    frame of reference (``FRAME_ATTRIBUTE``, which ``review.dicom_review.mr_for_fusion`` matches), as the
    loader outside Slicer does. The structure set's segmentation gets a binary-labelmap source on the CT grid
    (``use_labelmap_source``)."""
    messages = list(selection.messages)
    by_role = {}
    for request, nodes in loaded:
        by_role.setdefault(request.role, []).append((request, [n for n in nodes if n is not None]))
    ct_series = selection.ct_series
    if "CT" not in by_role:
        raise MissingSeriesError(f"Slicer did not load the planning CT ({ct_series.label()}).")
    request, nodes = by_role["CT"][0]
    ct = _only(nodes, "vtkMRMLScalarVolumeNode", request, "planning CT volume")
    ct.SetAttribute(SERIES_UID_ATTRIBUTE, ct_series.series_uid)
    ct.SetAttribute(FRAME_ATTRIBUTE, ct_series.frame_of_reference_uid)

    frames = {s.series_uid: s for s in selection.mr_files}
    mr = []
    for request, nodes in by_role.get("MR", []):
        volumes = [n for n in nodes if n.IsA("vtkMRMLScalarVolumeNode")]
        series = frames[request.series_uid]
        if not volumes:
            messages.append(f"{series.label()} was not loaded by Slicer.")
            continue
        for node in volumes:
            node.SetAttribute(SERIES_UID_ATTRIBUTE, series.series_uid)
            node.SetAttribute(FRAME_ATTRIBUTE, series.frame_of_reference_uid)
            mr.append(node)
        if series.frame_of_reference_uid != ct_series.frame_of_reference_uid:
            messages.append(
                f"{series.label()} is on another frame of reference than the planning CT: it is not registered to the "
                "CT and is shown in its own scanner coordinates. Register it before fusing."
            )

    seg, contours = None, {}
    if selection.structure_set is not None:
        request, nodes = by_role["RTSTRUCT"][0]
        seg = _only(nodes, "vtkMRMLSegmentationNode", request, "segmentation")
        use_labelmap_source(seg, ct)
        _copy_roi_tags(seg, selection.structure_set)
        seg.SetAttribute(SERIES_UID_ATTRIBUTE, selection.structure_set.series_uid)
        contours = dict(zip(roi_keys(selection.structure_set.rois), selection.structure_set.rois))

    dose = None
    if selection.rtdose is not None:
        request, nodes = by_role["RTDOSE"][0]
        dose = _only(nodes, "vtkMRMLScalarVolumeNode", request, "dose volume", DOSE_VOLUME_ATTRIBUTE)
        dose.SetAttribute(SERIES_UID_ATTRIBUTE, selection.rtdose.series_uid)
        dose.SetAttribute(FRAME_ATTRIBUTE, selection.rtdose.frame_of_reference_uid)

    return DicomCase(
        scene=scene,
        ct=ct,
        ct_series=ct_series,
        mr=mr,
        segmentation=seg,
        dose=dose,
        prescription=selection.prescription,
        structure_set=selection.structure_set,
        rtdose=selection.rtdose,
        contours=contours,
        scan=selection.scan,
        messages=messages,
        dose_problem=selection.dose_problem,
    )
