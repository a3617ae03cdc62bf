"""A DICOM-RT case folder into MRML, outside desktop Slicer (slicer-core) or inside it.

``load_dicom_case(folder, scene)`` scans the folder (any file names, nested folders), picks the planning
CT, the structure set, the plan dose and the plan, checks that they share the CT's frame of reference, and
adds to the scene what SlicerRT's import would: the CT, each MR series, a segmentation holding every ROI as
a segment on the CT grid, and the dose volume marked as SlicerRT marks it (``DicomRtImport.DoseVolume``,
unit on the study). The returned ``DicomCase`` also keeps the raw contours (for a contour-based DVH), the
CT series (to export an RTSTRUCT for it), the prescription when an RTPLAN is present, and every message
about what was left out and why.

How the pieces are chosen (an ambiguity is an error that names the candidates, never a guess):

* structure set: the only RTSTRUCT, or the one whose SOP Instance UID is given;
* planning image: the series the structure set references, else the only CT series, or the one given;
  every image a contour references (Contour Image Sequence) must be one of its slices, and the series the
  structure set references must be it (``check_referenced_images``): a truncated or other CT is an error
  naming how many referenced images are missing and which series they belong to;
* dose: the only RTDOSE whose Dose Summation Type is PLAN (or the one given); else per-beam (BEAM) doses that
  are exactly the beams of the RTPLAN they reference, on one grid, summed (a subset, an unknown plan or
  another grid is refused, naming the missing beams); per-fraction doses, and beam doses alone, are refused
  (the review needs the plan dose);
* plan: the RTPLAN the dose references, else the only RTPLAN.

Every ROI of the structure set becomes its own segment, named as drawn and tagged with its ROI number; ROIs
are never merged by name (two ROIs named SpinalCord are ``SpinalCord [ROI 3]`` and ``SpinalCord [ROI 7]``,
and which one is the cord is asked, see ``protocol.roles``). An ROI with an unusable closed contour (crossing
itself, fewer than 3 distinct points) is left out, with a message naming it, its number and the slice
(``rtstruct_read``).

A structure set, dose or plan on another frame of reference than the planning CT raises
``FrameOfReferenceError``: it is never overlaid. MR series on another frame are loaded (not
registered to the CT, the message says so, unless a rigid DICOM Spatial Registration (REG) in the folder
relates their frame to the CT's: ``registrations``; a deformable or unrelated REG is named and ignored).
A corrupt file is named in ``messages`` and left out; if it
was a slice of the planning CT, the CT's gap is an error that names it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from ..protocol.model import name_key
from ..warnings import SIBSpineWarning
from .dicom_image import ImageSeries, read_image_series
from .dicom_scan import DicomFile, DicomScan, ImageSeriesFiles, scan_folder
from .errors import (
    AmbiguousSeriesError,
    CaseIOError,
    DicomWarning,
    FrameOfReferenceError,
    MissingSeriesError,
    RTDoseError,
)
from .reg import REG_CLASSES, Registration, RegistrationError, read_registration
from .rtdose import RTDose, read_rtdose, sum_rtdoses
from .rtplan import Prescription, read_rtplan
from .rtstruct_read import RoiContours, StructureSet, read_rtstruct, roi_keys, structure_set_masks

#: Node attributes and segment tags this loader sets (values never hold patient data).
SERIES_UID_ATTRIBUTE = "DICOM.SeriesInstanceUID"
INSTANCE_UIDS_ATTRIBUTE = "DICOM.instanceUIDs"  # what Slicer's DICOM plugins set (space-separated)
FRAME_ATTRIBUTE = "SIBSpineSBRT.FrameOfReferenceUID"
ROI_NUMBER_TAG = "SIBSpineSBRT.ROINumber"  # the same tag as ``mrml.segmentations.ROI_NUMBER_TAG``
ROI_TYPE_TAG = "SIBSpineSBRT.RTROIInterpretedType"

PLAN_SUMMATION_TYPES = ("PLAN", "MULTI_PLAN", "RECORD")


@dataclass
class DicomCase:
    """A case loaded into MRML (see the module doc). Nodes: ``ct``, ``mr`` (list), ``segmentation`` and
    ``dose`` (None when the folder has none). ``contours`` maps structure key -> raw ROI contours: the ROI
    name, or ``Name [ROI n]`` when several ROIs carry the name (``rtstruct_read.roi_keys``; the segmentation
    holds each ROI as its own segment, named as drawn and tagged with its ROI number)."""

    scene: object
    ct: object
    ct_series: ImageSeries
    mr: List[object] = field(default_factory=list)
    segmentation: Optional[object] = None
    dose: Optional[object] = None
    prescription: Optional[Prescription] = None
    structure_set: Optional[StructureSet] = None
    rtdose: Optional[RTDose] = None
    contours: Dict[str, RoiContours] = field(default_factory=dict)
    scan: Optional[DicomScan] = None
    messages: List[str] = field(default_factory=list)
    dose_problem: str = ""
    plan_problem: str = ""  # an RTPLAN is in the folder but its fractionation could not be read: no pass
    registrations: List[Registration] = field(default_factory=list)  # rigid REGs relating a frame to the CT's

    def case_nodes(self):
        """The ``mrml.case.CaseNodes`` the review code takes (first MR only)."""
        from ..mrml.case import CaseNodes

        return CaseNodes(self.ct, self.segmentation, self.dose, self.mr[0] if self.mr else None)

    @property
    def default_name(self) -> str:
        """A case name for outputs that carries no patient data (folder names often do): "dicom-" and the end
        of the study UID."""
        digits = "".join(ch for ch in (self.ct_series.study_uid or "") if ch.isdigit())
        return f"dicom-{digits[-8:]}" if digits else "dicom-case"

    @property
    def segment_names(self) -> List[str]:
        return list(self.contours)

    def case_input(self, level: str, name: str = "", dose_unit: Optional[str] = None):
        """``review.pipeline.CaseInput`` for this case: segments on the CT grid and the dose in Gy."""
        from ..mrml.case import case_input_from_nodes

        if self.segmentation is None:
            unread = self.scan.problems() if self.scan else []
            raise MissingSeriesError(
                f"The case folder {self.scan.root if self.scan else ''} has no readable RTSTRUCT: a review needs the "
                "structures. Export the structure set with the CT and dose."
                + (
                    f" Files that could not be read (one may be the structure set): {' '.join(unread)}"
                    if unread
                    else ""
                )
            )
        data = case_input_from_nodes(
            self.scene, self.segmentation, self.dose, level, name or self.default_name, self.ct, dose_unit
        )
        if self.dose is None and self.dose_problem:
            data.dose_problem = self.dose_problem
        return data


def _scene_of(scene):
    return getattr(scene, "scene", scene)


def _file_list(files: List[DicomFile]) -> str:
    return "; ".join(str(f.path) for f in files)


def _choose_structure_set(scan: DicomScan, uid: Optional[str]) -> Optional[DicomFile]:
    candidates = [f for f in scan.rtstructs if uid is None or f.sop_instance_uid == uid]
    if uid is not None and not candidates:
        raise MissingSeriesError(f"{scan.root}: no RTSTRUCT with SOP Instance UID {uid}.")
    if len(candidates) > 1:
        raise AmbiguousSeriesError(
            f"{scan.root} holds {len(candidates)} RTSTRUCTs ({_file_list(candidates)}) and nothing says which one "
            "to review. Keep one structure set in the case folder: move the others out of the case folder."
        )
    return candidates[0] if candidates else None


def _choose_planning_series(
    scan: DicomScan, structure_set: Optional[StructureSet], uid: Optional[str], messages: List[str]
) -> ImageSeriesFiles:
    if uid is not None:
        if uid not in scan.series:
            raise MissingSeriesError(f"{scan.root}: no image series with Series Instance UID {uid}.")
        return scan.series[uid]
    cts = scan.image_series("CT")
    if structure_set is not None:
        referenced = [scan.series[s] for s in structure_set.referenced_series_uids if s in scan.series]
        if len(referenced) == 1:
            return referenced[0]
        frames = set(structure_set.frame_of_reference_uids)
        same_frame = [s for s in cts if s.frame_of_reference_uid in frames]
        if len(same_frame) == 1:
            if structure_set.referenced_series_uids:
                messages.append(
                    f"{structure_set.path}: the series it references is not in the folder; using "
                    f"{same_frame[0].label()}"
                    " (same frame of reference) as the planning CT."
                )
            return same_frame[0]
        if not cts:
            raise MissingSeriesError(
                f"{scan.root}: no CT series, and the series {structure_set.path} references is not in the folder. "
                "Export the planning CT with the structure set."
            )
        if len(cts) == 1:
            return cts[0]  # its frame is checked against the structure set next
    if not cts:
        raise MissingSeriesError(
            f"{scan.root}: no CT image series found ({scan.summary()}). Export the planning CT into the case folder."
        )
    if len(cts) > 1:
        labels = "; ".join(f"{s.label()} (UID {s.series_uid}, {len(s.files)} files)" for s in cts)
        raise AmbiguousSeriesError(
            f"{scan.root} holds {len(cts)} CT series and nothing says which is the planning CT: {labels}. Export the "
            "structure set that references the planning CT, or keep one CT per case folder: move the other series "
            "out of the case folder."
        )
    return cts[0]


def _check_frame(what: str, path, frame: str, ct: ImageSeries) -> None:
    if frame and frame != ct.frame_of_reference_uid:
        raise FrameOfReferenceError(
            f"{path}: this {what} is on frame of reference {frame}, but the planning CT ({ct.label()}) is on "
            f"{ct.frame_of_reference_uid}. It is refused, not overlaid: export the {what} made on this planning CT, "
            "or register and resample it onto the CT in the planning system first."
        )
    if not frame:
        raise FrameOfReferenceError(
            f"{path}: this {what} names no frame of reference, so it cannot be checked against the planning CT "
            f"({ct.label()}). Re-export it from the planning system."
        )


def choose_ct_and_structures(scan: DicomScan, ct_series_uid: Optional[str], structure_set_uid: Optional[str], messages):
    """The structure set and the planning CT it references (both read), with every frame of reference of the
    structure set checked against the CT: the same choices and errors inside and outside Slicer.
    Returns (structure set file or None, StructureSet or None, the CT's series files, ImageSeries)."""
    ss_file = _choose_structure_set(scan, structure_set_uid)
    structure_set = read_rtstruct(ss_file.path) if ss_file is not None else None
    planning = _choose_planning_series(scan, structure_set, ct_series_uid, messages)
    ct = read_image_series(planning, scan)
    if structure_set is not None:
        frames = set(structure_set.frame_of_reference_uids) | {
            r.frame_of_reference_uid for r in structure_set.rois if r.frame_of_reference_uid
        }
        for frame in sorted(frames) or [""]:
            _check_frame("structure set", structure_set.path, frame, ct)
        check_referenced_images(scan, structure_set, ct)
    return ss_file, structure_set, planning, ct


def _series_of_references(structure_set: StructureSet) -> Dict[str, str]:
    """SOP Instance UID -> Series Instance UID of the images the structure set lists per referenced series."""
    out: Dict[str, str] = {}
    for fr in getattr(structure_set.dataset, "ReferencedFrameOfReferenceSequence", None) or []:
        for st in getattr(fr, "RTReferencedStudySequence", None) or []:
            for se in getattr(st, "RTReferencedSeriesSequence", None) or []:
                series = str(getattr(se, "SeriesInstanceUID", "") or "")
                for ci in getattr(se, "ContourImageSequence", None) or []:
                    out[str(getattr(ci, "ReferencedSOPInstanceUID", "") or "")] = series
    return out


def check_referenced_images(scan: DicomScan, structure_set: StructureSet, ct: ImageSeries) -> None:
    """MissingSeriesError unless every image a contour references (Contour Image Sequence) is a slice of the
    planning CT, and the series the structure set references (when it names any) is the planning CT's. A
    structure set on images that are not there cannot be placed on the CT: the message says how many are
    missing and which series they belong to, rather than every structure being blamed for it."""
    where = structure_set.path or "The RTSTRUCT"
    referenced = {
        uid for roi in structure_set.rois + structure_set.refused for c in roi.contours for uid in c.referenced_sop_uids
    }
    referenced.discard("")
    series_named = [s for s in structure_set.referenced_series_uids if s]
    used = f"{ct.label()} (Series Instance UID {ct.series_uid}, {len(ct.slice_sop_uids)} image(s))"
    missing = referenced - set(ct.slice_sop_uids)
    if missing:
        listed = _series_of_references(structure_set)
        elsewhere: Dict[str, int] = {}
        for series in scan.series.values():
            if series.series_uid != ct.series_uid:
                count = sum(f.sop_instance_uid in missing for f in series.files)
                if count:
                    elsewhere[series.label() + f" (Series Instance UID {series.series_uid})"] = count
        absent = len(missing) - sum(elsewhere.values())
        home = sorted({listed[u] for u in missing if listed.get(u)}) or series_named
        parts = []
        if absent:
            if home == [ct.series_uid]:
                series = "the planning CT's own series, which is incomplete in the folder"
            else:
                series = f"series {', '.join(home)}" if home else "a series the structure set does not name"
            parts.append(
                f"{absent} of the {len(referenced)} CT images its contours reference are missing from the case folder "
                f"(they belong to {series}; the folder holds {len(referenced) - len(missing)} of them)"
            )
        for label, count in elsewhere.items():
            parts.append(f"{count} of them are images of {label}, not of the planning CT")
        raise MissingSeriesError(
            f"{where}: {'; '.join(parts)}. The planning CT used is {used}. The structures cannot be placed on a CT "
            "that lacks the images they were drawn on: export the complete planning CT series the structure set "
            "references into the case folder."
        )
    if series_named and ct.series_uid not in series_named:
        raise MissingSeriesError(
            f"{where}: it references series {', '.join(series_named)}, but the planning CT used is {used}, another "
            "series. Export the planning CT series the structure set references into the case folder (or the "
            "structure set drawn on this CT)."
        )


@dataclass
class BeamDoseFiles:
    """A plan's per-beam RTDOSE files (Dose Summation Type BEAM), exactly the beams of the plan they reference:
    the plan dose is their sum (``_read_dose``)."""

    files: List[DicomFile]
    beams: List[int]  # the beam number of each file
    plan: DicomFile

    @property
    def path(self):
        return self.files[0].path

    @property
    def frame_of_reference_uid(self) -> str:
        return self.files[0].frame_of_reference_uid


def _first(ds, name: str):
    seq = getattr(ds, name, None) if ds is not None else None
    return seq[0] if seq is not None and len(seq) else None


def _numbers_text(numbers) -> str:
    return ", ".join(str(n) for n in sorted(numbers))


def _plan_beam_numbers(plan: DicomFile, group: Optional[int]) -> List[int]:
    """The beams of the plan's fraction group ``group`` (or of its only group), else of its BeamSequence."""
    groups = list(getattr(plan.header, "FractionGroupSequence", None) or [])
    if group is not None:
        groups = [g for g in groups if getattr(g, "FractionGroupNumber", None) == group] or groups
    beams = []
    if len(groups) == 1:
        beams = [int(b.ReferencedBeamNumber) for b in getattr(groups[0], "ReferencedBeamSequence", None) or []]
    if not beams:
        beams = [
            int(b.BeamNumber)
            for b in getattr(plan.header, "BeamSequence", None) or []
            if str(getattr(b, "TreatmentDeliveryType", "TREATMENT") or "TREATMENT").upper() != "SETUP"
        ]
    return beams


def _beam_doses(scan: DicomScan, files: List[DicomFile]) -> BeamDoseFiles:
    """``files`` (all BEAM doses) when they are exactly the beams of the one RTPLAN they reference, on one frame of
    reference; else RTDoseError saying what is missing or wrong."""
    refused = "Beam doses are summed only when they are every beam of their plan; beam doses alone are refused."
    fix = "Export the missing beam doses, or the plan's total dose (Dose Summation Type PLAN), into the case folder."
    plan_uids, groups, beams = set(), set(), {}
    for f in files:
        plan_ref = _first(f.header, "ReferencedRTPlanSequence")
        group_ref = _first(plan_ref, "ReferencedFractionGroupSequence")
        beam_ref = _first(group_ref, "ReferencedBeamSequence")
        number = getattr(beam_ref, "ReferencedBeamNumber", None) if beam_ref is not None else None
        plan_uid = str(getattr(plan_ref, "ReferencedSOPInstanceUID", "") or "") if plan_ref is not None else ""
        if not plan_uid or number is None:
            raise RTDoseError(
                f"{f.path}: a BEAM dose that does not name its plan and beam (Referenced RT Plan Sequence > Referenced "
                f"Fraction Group Sequence > Referenced Beam Sequence), so it cannot be summed. {refused} {fix}"
            )
        plan_uids.add(plan_uid)
        group = getattr(group_ref, "ReferencedFractionGroupNumber", None)
        groups.add(None if group is None else int(group))
        beams.setdefault(int(number), []).append(f)
    if len(plan_uids) > 1:
        raise RTDoseError(
            f"{scan.root}: the BEAM doses ({_file_list(files)}) belong to {len(plan_uids)} different plans; they are "
            f"not summed. {refused} {fix}"
        )
    plan_uid = plan_uids.pop()
    plan = next((p for p in scan.rtplans if p.sop_instance_uid == plan_uid), None)
    if plan is None:
        raise RTDoseError(
            f"{scan.root}: the BEAM doses ({_file_list(files)}) belong to the RTPLAN {plan_uid}, which is not in the "
            f"case folder, so whether they are all its beams cannot be checked. {refused} Add that RTPLAN, or export "
            "the plan's total dose."
        )
    wanted = _plan_beam_numbers(plan, groups.pop() if len(groups) == 1 else None)
    if not wanted:
        raise RTDoseError(
            f"{plan.path}: the RTPLAN lists no beams (Beam Sequence, Fraction Group Sequence > Referenced Beam "
            f"Sequence), so the BEAM doses ({_file_list(files)}) cannot be checked against it. {refused} {fix}"
        )
    twice = {n: fs for n, fs in beams.items() if len(fs) > 1}
    if twice:
        n, fs = sorted(twice.items())[0]
        raise RTDoseError(f"{scan.root}: beam {n} has {len(fs)} BEAM doses ({_file_list(fs)}). Keep one per beam.")
    extra = sorted(set(beams) - set(wanted))
    missing = sorted(set(wanted) - set(beams))
    label = str(getattr(plan.header, "RTPlanLabel", "") or "").strip()
    named = f"the RTPLAN {plan.path}" + (f" ('{label}')" if label else "")
    if extra:
        raise RTDoseError(
            f"{scan.root}: the BEAM doses of beams {_numbers_text(extra)} are not beams of {named} (its beams: "
            f"{_numbers_text(wanted)}). {refused} {fix}"
        )
    if missing:
        raise RTDoseError(
            f"{scan.root}: the RTDOSE files ({_file_list(files)}) hold BEAM doses of beams {_numbers_text(beams)} of "
            f"{named}, which has {len(wanted)} beams: beam{'s' if len(missing) > 1 else ''} {_numbers_text(missing)} "
            f"{'are' if len(missing) > 1 else 'is'} missing. {refused} {fix}"
        )
    for f in files:
        if f.frame_of_reference_uid != files[0].frame_of_reference_uid:
            raise RTDoseError(
                f"{f.path} and {files[0].path}, BEAM doses of one plan, lie in different frames of reference: they "
                "are not summed. Re-export the beam doses."
            )
    order = sorted(beams)
    return BeamDoseFiles([beams[n][0] for n in order], order, plan)


def _read_dose(chosen) -> RTDose:
    """The chosen dose: one RTDOSE, or the sum of a plan's beam doses (``BeamDoseFiles``), said in a message."""
    if not isinstance(chosen, BeamDoseFiles):
        return read_rtdose(chosen.path)
    dose = sum_rtdoses([read_rtdose(f.path) for f in chosen.files], "PLAN")
    warnings.warn(
        DicomWarning(
            f"The plan dose is the sum of the {len(chosen.files)} beam doses (Dose Summation Type BEAM) of every beam "
            f"of the RTPLAN {chosen.plan.path} (beams {_numbers_text(chosen.beams)}: {_file_list(chosen.files)})."
        ),
        stacklevel=2,
    )
    return dose


def _choose_dose(scan: DicomScan, uid: Optional[str], sum_beams: bool = False):
    """The plan dose's file; with ``sum_beams``, when the folder holds only BEAM doses that are exactly the beams of
    their RTPLAN, those (``BeamDoseFiles``)."""
    candidates = [f for f in scan.rtdoses if uid is None or f.sop_instance_uid == uid]
    if uid is not None and not candidates:
        raise MissingSeriesError(f"{scan.root}: no RTDOSE with SOP Instance UID {uid}.")
    if not candidates:
        return None
    if len(candidates) == 1 and uid is not None:
        return candidates[0]
    kind = {f.sop_instance_uid: str(getattr(f.header, "DoseSummationType", "") or "").upper() for f in candidates}
    plans = [f for f in candidates if kind[f.sop_instance_uid] in PLAN_SUMMATION_TYPES]
    if not plans and len(candidates) == 1 and not kind[candidates[0].sop_instance_uid]:
        return candidates[0]  # Dose Summation Type not stated (it is mandatory): the loader says so
    if len(plans) == 1:
        return plans[0]
    if not plans and sum_beams and uid is None and all(kind[f.sop_instance_uid] == "BEAM" for f in candidates):
        return _beam_doses(scan, candidates)
    if not plans:
        types = ", ".join(sorted({kind[f.sop_instance_uid] or "unstated" for f in candidates}))
        raise RTDoseError(
            f"{scan.root}: the RTDOSE file(s) ({_file_list(candidates)}) hold {types} doses, not the plan dose "
            "(Dose Summation Type PLAN). Export the plan's total dose from the planning system."
        )
    raise AmbiguousSeriesError(
        f"{scan.root} holds {len(plans)} plan doses ({_file_list(plans)}) and nothing says which one to review. Keep "
        "one plan dose in the case folder: move the others out of the case folder."
    )


def _choose_plan(scan: DicomScan, dose: Optional[RTDose], messages: List[str]) -> Optional[DicomFile]:
    if not scan.rtplans:
        return None
    if dose is not None and dose.referenced_plan_uid:
        for f in scan.rtplans:
            if f.sop_instance_uid == dose.referenced_plan_uid:
                return f
    if len(scan.rtplans) == 1:
        return scan.rtplans[0]
    messages.append(
        f"{scan.root} holds {len(scan.rtplans)} RTPLANs ({_file_list(scan.rtplans)}) and the dose references none of "
        "them: no prescription was read."
    )
    return None


class _Recorder:
    """Collect this library's warnings into ``messages`` (and re-issue them once the block ends)."""

    def __init__(self, messages: List[str]):
        self.messages = messages
        self._ctx = warnings.catch_warnings(record=True)

    def __enter__(self):
        self._caught = self._ctx.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc):
        self._ctx.__exit__(*exc)
        for w in self._caught:
            if issubclass(w.category, SIBSpineWarning):
                text = str(w.message)
                if text not in self.messages:
                    self.messages.append(text)
                warnings.warn(text, w.category, stacklevel=3)
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return False


def _subject_hierarchy(scene, study_uid: str):
    """Patient and study items (named without patient data) to hang the case's nodes under."""
    import slicer

    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    patient = sh.CreateSubjectItem(sh.GetSceneItemID(), "Patient")
    study = sh.CreateStudyItem(patient, "Study")
    if study_uid:
        sh.SetItemUID(study, "DICOM", study_uid)
    return sh, study


def _place(sh, study, node, series_uid: str = "") -> None:
    item = sh.GetItemByDataNode(node)
    if not item:
        item = sh.CreateItem(study, node)
    sh.SetItemParent(item, study)
    if series_uid:
        sh.SetItemUID(item, "DICOM", series_uid)


def _volume_name(series: ImageSeries, fallback: str) -> str:
    parts = [fallback]
    if series.number:
        parts.append(series.number)
    if series.description:
        parts.append(series.description)
    return " ".join(parts)


def load_dicom_case(
    folder,
    scene,
    ct_series_uid: Optional[str] = None,
    structure_set_uid: Optional[str] = None,
    dose_uid: Optional[str] = None,
    load_mr: bool = True,
    on_dose_error: str = "raise",
) -> DicomCase:
    """Load a DICOM-RT case folder into ``scene`` (a ``vtkMRMLScene`` or ``mrml.scene.StandaloneScene``).

    ``on_dose_error="record"`` keeps loading when the dose cannot be used (no DoseUnits, only per-beam
    doses, ...): the case then has no dose node and ``dose_problem`` says why; the default raises. A
    frame-of-reference mismatch of the dose always raises.
    """
    if on_dose_error not in ("raise", "record"):
        raise ValueError("on_dose_error must be 'raise' or 'record'.")
    from ..geometry.masks import Mask
    from ..mrml import segmentations as segs
    from ..mrml.volumes import add_volume, mark_as_dose

    mrml_scene = _scene_of(scene)
    messages: List[str] = []
    with _Recorder(messages):
        scan = scan_folder(folder)
        messages.extend(scan.problems())

        ss_file, structure_set, planning, ct = choose_ct_and_structures(
            scan, ct_series_uid, structure_set_uid, messages
        )

        dose, dose_problem = None, ""
        try:
            dose_file = _choose_dose(scan, dose_uid, sum_beams=True)
            if dose_file is not None:
                _check_frame("dose", dose_file.path, dose_file.frame_of_reference_uid, ct)
                dose = _read_dose(dose_file)
                if dose.summation_type not in PLAN_SUMMATION_TYPES:
                    messages.append(
                        f"{dose_file.path}: Dose Summation Type is {dose.summation_type or 'not stated'}, not PLAN; it "
                        "is used as the dose to review because it is the only dose in the folder. Check that "
                        "it is the plan's total dose."
                    )
        except FrameOfReferenceError:
            raise
        except (RTDoseError, AmbiguousSeriesError, CaseIOError) as exc:
            if on_dose_error == "raise":
                raise
            dose, dose_problem = None, str(exc)
            messages.append(dose_problem)

        prescription, plan_problem = None, ""
        plan_file = _choose_plan(scan, dose, messages)
        broken_plans = [c for c in scan.corrupt if c.kind == "RTPLAN"]
        if plan_file is None and broken_plans and not scan.rtplans:
            plan_problem = (
                f"The RTPLAN {broken_plans[0].path} could not be read ({broken_plans[0].reason}), so the plan's "
                "fractionation was not checked. Re-export the plan, or remove it from the folder to review without it."
            )
        if plan_file is None and scan.rtplans:
            plan_problem = (
                f"The case folder holds {len(scan.rtplans)} RTPLANs and none could be chosen as this dose's plan, so "
                "its fractionation was not checked. Keep only the reviewed plan in the case folder."
            )
        if plan_file is not None:
            if plan_file.frame_of_reference_uid:
                _check_frame("plan", plan_file.path, plan_file.frame_of_reference_uid, ct)
            try:
                prescription = read_rtplan(plan_file.path)
                messages.extend(prescription.notes)
                if prescription.fractions is None:
                    plan_problem = (
                        f"{plan_file.path}: the RTPLAN states no number of fractions, so the plan's fractionation "
                        "could not be checked against the protocol's. Re-export the plan with its fraction group."
                    )
            except CaseIOError as exc:
                messages.append(str(exc))
                plan_problem = (
                    f"The RTPLAN {plan_file.path} could not be read ({exc}), so the plan's fractionation was not "
                    "checked. Re-export the plan, or remove it from the folder to review without it."
                )
        if plan_problem:
            messages.append(plan_problem)

        mr_series: List[ImageSeries] = []
        if load_mr:
            for s in scan.image_series("MR"):
                if s.series_uid == planning.series_uid:
                    continue
                try:
                    mr_series.append(read_image_series(s, scan))
                except CaseIOError as exc:
                    messages.append(f"{s.label()} was not loaded: {exc}")
        for s in scan.image_series():
            if s.series_uid != planning.series_uid and s.modality != "MR":
                messages.append(f"{s.label()} ({len(s.files)} files) is not the planning CT and was not loaded.")

        registrations = _registrations(scan, ct.frame_of_reference_uid, messages)

        # -- into MRML ---------------------------------------------------------------------------------
        sh, study = _subject_hierarchy(mrml_scene, ct.study_uid)
        ct_node = add_volume(mrml_scene, ct.array, ct.geometry, _volume_name(ct, ct.modality))
        ct_node.SetAttribute(SERIES_UID_ATTRIBUTE, ct.series_uid)
        ct_node.SetAttribute(INSTANCE_UIDS_ATTRIBUTE, " ".join(ct.slice_sop_uids))
        ct_node.SetAttribute(FRAME_ATTRIBUTE, ct.frame_of_reference_uid)
        _place(sh, study, ct_node, ct.series_uid)

        mr_nodes = []
        for n, s in enumerate(mr_series, start=1):
            node = add_volume(mrml_scene, s.array, s.geometry, _volume_name(s, "MR") if s.number else f"MR {n}")
            node.SetAttribute(SERIES_UID_ATTRIBUTE, s.series_uid)
            node.SetAttribute(INSTANCE_UIDS_ATTRIBUTE, " ".join(s.slice_sop_uids))
            node.SetAttribute(FRAME_ATTRIBUTE, s.frame_of_reference_uid)
            _place(sh, study, node, s.series_uid)
            mr_nodes.append(node)
            if s.frame_of_reference_uid != ct.frame_of_reference_uid and not registration_to_ct(
                registrations, s.frame_of_reference_uid, ct.frame_of_reference_uid
            ):
                messages.append(
                    f"{s.label()} is on another frame of reference than the planning CT: it is not registered to the "
                    "CT and is shown in its own scanner coordinates. Register it before fusing."
                )

        seg_node, contours = None, {}
        if structure_set is not None:
            where = structure_set.path or "RTSTRUCT"
            keys = roi_keys(structure_set.rois)
            groups: Dict[str, List[Tuple[RoiContours, str]]] = {}
            for roi, key in zip(structure_set.rois, keys):
                if key != roi.name:
                    groups.setdefault(name_key(roi.name), []).append((roi, key))
                if not roi.closed_planar():
                    messages.append(f"{where}: ROI {roi.label} has no closed planar contour; its segment is empty.")
            for members in groups.values():
                messages.append(
                    f"{where}: ROIs {', '.join(r.label for r, _ in members)} have the same name (case, spaces, '_' "
                    f"and '-' ignored); each is kept as its own structure: {', '.join(k for _, k in members)}."
                )
            masks = structure_set_masks(structure_set, ct.geometry)
            seg_node = segs.new_segmentation(mrml_scene, "Structures", ct.geometry)
            seg_node.SetNodeReferenceID(seg_node.GetReferenceImageGeometryReferenceRole(), ct_node.GetID())
            for roi, key in zip(structure_set.rois, keys):
                mask: Mask = masks[key]
                if roi.closed_planar() and mask.is_empty:
                    messages.append(
                        f"{where}: ROI {roi.label} has contours but covers no CT voxel centre (too small, or "
                        "outside the CT); its segment is empty."
                    )
                sid = segs.add_source_segment(seg_node, mask, roi.name, roi.color, allow_same_name=True)
                segment = seg_node.GetSegmentation().GetSegment(sid)
                segment.SetTag(ROI_NUMBER_TAG, str(roi.number))
                if roi.interpreted_type:
                    segment.SetTag(ROI_TYPE_TAG, roi.interpreted_type)
                contours[key] = roi
            seg_node.SetAttribute(SERIES_UID_ATTRIBUTE, structure_set.series_uid)
            _place(sh, study, seg_node, structure_set.series_uid)

        dose_node = None
        if dose is not None:
            dose_node = add_volume(mrml_scene, dose.values.astype("float32"), dose.geometry, "Dose")
            dose_node.SetAttribute(SERIES_UID_ATTRIBUTE, dose.series_uid)
            dose_node.SetAttribute(FRAME_ATTRIBUTE, dose.frame_of_reference_uid)
            _place(sh, study, dose_node, dose.series_uid)
            mark_as_dose(mrml_scene, dose_node, dose.units)

    return DicomCase(
        scene=mrml_scene,
        ct=ct_node,
        ct_series=ct,
        mr=mr_nodes,
        segmentation=seg_node,
        dose=dose_node,
        prescription=prescription,
        plan_problem=plan_problem,
        structure_set=structure_set,
        rtdose=dose,
        contours=contours,
        scan=scan,
        messages=messages,
        dose_problem=dose_problem,
        registrations=registrations,
    )


def _registrations(scan: DicomScan, ct_frame: str, messages: List[str]) -> List[Registration]:
    """The rigid REG objects of the folder that relate another frame of reference to the planning CT's; the others
    (deformable, not rigid, unreadable, or not relating the CT) are named in ``messages`` and ignored."""
    found = []
    for f in scan.other:
        if f.sop_class_uid not in REG_CLASSES:
            continue
        try:
            reg = read_registration(f.path)
        except RegistrationError as exc:
            messages.append(f"{exc} The registration is ignored.")
            continue
        except (OSError, ValueError) as exc:
            messages.append(f"{f.path}: the registration could not be read ({exc}); it is ignored.")
            continue
        if ct_frame not in reg.frames or len(reg.frames) < 2:
            messages.append(
                f"{f.path}: the registration relates frames of reference {', '.join(sorted(reg.frames))}, none of them "
                f"the planning CT's ({ct_frame}); it is ignored."
            )
            continue
        found.append(reg)
    return found


def registration_to_ct(registrations: List[Registration], frame: str, ct_frame: str) -> Optional[Registration]:
    """The first registration relating ``frame`` to ``ct_frame``."""
    return next((r for r in registrations if r.relates(frame, ct_frame)), None)


def warn_messages(case: DicomCase) -> None:
    """Issue each of the case's messages as a ``DicomWarning`` (for callers that collect warnings)."""
    for m in case.messages:
        warnings.warn(m, DicomWarning, stacklevel=2)
