"""The same case through desktop Slicer's DICOM database and SlicerRT's DICOM-RT plugin.

Only for desktop Slicer with SlicerRT (also headless: ``Slicer --no-main-window --python-script run.py``,
where the DICOM module has already set up ``slicer.dicomDatabase``). DICOMLib is imported inside the
function, so this module imports anywhere.

The folder is first scanned and checked with the same pydicom code as outside Slicer (choice of CT,
structure set, dose and plan; frame-of-reference checks; named errors), then imported into a temporary
DICOM database (``DICOMUtils.TemporaryDICOMDatabase`` + ``importDicom``) and the chosen series loaded by
``DICOMUtils.loadSeriesByUID`` with only Slicer's scalar-volume plugin and SlicerRT's RT plugin enabled
(``loadPatientByUID`` would load every series of the patient with every plugin; neither takes a plugin
list). Nodes are matched back to the chosen series by their DICOM UIDs, and the result is
the same ``DicomCase`` as ``load_dicom_case`` returns: the CT, MR list, a segmentation with a binary
labelmap on the CT grid, and the dose node (SlicerRT has marked it and set its unit), plus the raw
contours and the prescription read with pydicom.

Headless use (``Slicer --no-main-window --python-script review_dicom.py CASE_DIR T8``)::

    import sys, slicer
    sys.path.insert(0, "<repo>/SIBSpineSBRT")
    from SIBSpineSBRTLib.caseio.slicer_dicom import load_case_with_slicer_dicom
    from SIBSpineSBRTLib.protocol.model import load_protocol
    from SIBSpineSBRTLib.review.pipeline import review_case
    case = load_case_with_slicer_dicom(sys.argv[1])
    result = review_case(case.case_input(sys.argv[2]), load_protocol())
    slicer.util.exit(0 if result.verdict == "pass" else 1)
"""

from __future__ import annotations

from typing import List, Optional

from .case_loader import (
    PLAN_SUMMATION_TYPES,
    SERIES_UID_ATTRIBUTE,
    DicomCase,
    _check_frame,
    _choose_dose,
    _choose_plan,
    choose_ct_and_structures,
)
from .dicom_scan import scan_folder
from .errors import MissingSeriesError
from .rtdose import read_rtdose
from .rtplan import read_rtplan
from .rtstruct_read import unique_roi_names

PLUGINS = ["DICOMScalarVolumePlugin", "DicomRtImportExportPlugin"]


def _series_uid_of_node(node, db) -> str:
    """Series Instance UID of a node loaded from the DICOM database."""
    uids = (node.GetAttribute("DICOM.instanceUIDs") or "").split()
    if uids:
        f = db.fileForInstance(uids[0])
        if f:
            return db.fileValue(f, "0020,000E") or ""
    import slicer

    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(node.GetScene())
    item = sh.GetItemByDataNode(node)
    return sh.GetItemUID(item, "DICOM") if item else ""


def _instance_uids_of_node(node) -> str:
    import slicer

    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(node.GetScene())
    item = sh.GetItemByDataNode(node)
    return (
        (node.GetAttribute("DICOM.instanceUIDs") or "")
        + " "
        + (sh.GetItemUID(item, "DICOMInstanceUIDs") if item else "")
    )


def load_case_with_slicer_dicom(
    folder,
    ct_series_uid: Optional[str] = None,
    structure_set_uid: Optional[str] = None,
    dose_uid: Optional[str] = None,
) -> DicomCase:
    """Load a DICOM-RT case folder in desktop Slicer through its DICOM database and SlicerRT.

    Same checks, choices and errors as ``case_loader.load_dicom_case``; nodes land in ``slicer.mrmlScene``.
    Raises MissingSeriesError when SlicerRT is not installed (no RT plugin) or a chosen object did not load.
    """
    import slicer
    from DICOMLib import DICOMUtils

    if "DicomRtImportExportPlugin" not in getattr(slicer.modules, "dicomPlugins", {}):
        raise MissingSeriesError(
            "SlicerRT's DICOM-RT plugin is not loaded: install SlicerRT from the Extensions Manager (or add its module "
            "paths with --additional-module-paths when running with --testing)."
        )
    messages: List[str] = []
    scan = scan_folder(folder)
    messages.extend(scan.problems())
    ss_file, structure_set, planning, ct_series = choose_ct_and_structures(
        scan, ct_series_uid, structure_set_uid, messages
    )
    dose_file = _choose_dose(scan, dose_uid)
    rtdose = None
    if dose_file is not None:
        _check_frame("dose", dose_file.path, dose_file.frame_of_reference_uid, ct_series)
        rtdose = read_rtdose(dose_file.path)  # raises the same named errors (units...) as outside Slicer
    plan_file = _choose_plan(scan, rtdose, messages)
    prescription = None
    if plan_file is not None:
        if plan_file.frame_of_reference_uid:
            _check_frame("plan", plan_file.path, plan_file.frame_of_reference_uid, ct_series)
        prescription = read_rtplan(plan_file.path)
        messages.extend(prescription.notes)

    # load only what was chosen, with only the scalar-volume and SlicerRT plugins (Slicer's DICOMUtils has no
    # plugin argument: the plugin table is narrowed for the load and restored afterwards)
    wanted = [planning.series_uid] + [s.series_uid for s in scan.image_series("MR")]
    wanted += [f.series_uid for f in (ss_file, dose_file, plan_file) if f is not None]
    wanted = list(dict.fromkeys(u for u in wanted if u))
    scene = slicer.mrmlScene
    all_plugins = slicer.modules.dicomPlugins
    slicer.modules.dicomPlugins = {k: v for k, v in all_plugins.items() if k in PLUGINS}
    try:
        with DICOMUtils.TemporaryDICOMDatabase() as db:
            DICOMUtils.importDicom(str(folder), db)
            loaded_ids = DICOMUtils.loadSeriesByUID(wanted) or []
            nodes = [scene.GetNodeByID(i) for i in loaded_ids]
            nodes = [n for n in nodes if n is not None]
            # series UIDs are looked up while the temporary database is open
            series_of = {n.GetID(): _series_uid_of_node(n, db) for n in nodes if n.IsA("vtkMRMLScalarVolumeNode")}
    finally:
        slicer.modules.dicomPlugins = all_plugins
    by_series = {
        series_of[n.GetID()]: n
        for n in nodes
        if n.GetID() in series_of and not n.GetAttribute("DicomRtImport.DoseVolume")
    }

    ct = by_series.get(ct_series.series_uid)
    if ct is None:
        raise MissingSeriesError(f"Slicer did not load the planning CT ({ct_series.label()}) from {folder}.")
    ct.SetAttribute(SERIES_UID_ATTRIBUTE, ct_series.series_uid)
    mr = [n for uid, n in by_series.items() if uid in scan.series and scan.series[uid].modality == "MR"]

    seg = None
    contours = {}
    seg_nodes = [n for n in nodes if n.IsA("vtkMRMLSegmentationNode")]
    if structure_set is not None:
        if len(seg_nodes) != 1:
            raise MissingSeriesError(
                f"SlicerRT loaded {len(seg_nodes)} segmentations from {folder}; expected the one structure set "
                f"{structure_set.path}."
            )
        seg = seg_nodes[0]
        # SlicerRT keeps planar contours as the source; analysis needs binary labelmaps on the CT grid
        seg.SetReferenceImageGeometryParameterFromVolumeNode(ct)
        seg.CreateBinaryLabelmapRepresentation()
        contours = dict(zip(unique_roi_names(structure_set.rois), structure_set.rois))

    dose_nodes = [n for n in nodes if n.GetAttribute("DicomRtImport.DoseVolume")]
    dose = None
    if rtdose is not None:
        matching = [n for n in dose_nodes if series_of.get(n.GetID()) == rtdose.series_uid] or dose_nodes
        if len(matching) > 1:  # several doses in one series: match the instance
            matching = [n for n in matching if rtdose.sop_instance_uid in _instance_uids_of_node(n)]
        dose = matching[0] if len(matching) == 1 else None
        if dose is None:
            raise MissingSeriesError(f"SlicerRT did not load the dose {dose_file.path}.")
        if rtdose.summation_type and rtdose.summation_type not in PLAN_SUMMATION_TYPES:
            messages.append(f"{dose_file.path}: Dose Summation Type is {rtdose.summation_type}, not PLAN.")

    return DicomCase(
        scene=scene,
        ct=ct,
        ct_series=ct_series,
        mr=mr,
        segmentation=seg,
        dose=dose,
        prescription=prescription,
        structure_set=structure_set,
        rtdose=rtdose,
        contours=contours,
        scan=scan,
        messages=messages,
    )
