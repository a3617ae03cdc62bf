"""Masks to an RTSTRUCT for the planning system: contours on the planning CT's slices, written with pydicom.

Contours
--------
A structure built on contours (a planning volume grown from an RTSTRUCT's polygons, ``geometry.contour_margins``)
is written as its polygons on the CT slices (``contours_from_structure``: no tracing, no staircase). A mask is
traced: on every CT slice it touches, the boundary is traced by marching squares (contourpy, the contour
engine of matplotlib) at level 0.5 of the mask's values. For a binary mask the boundary runs through the
mid-points between inside and outside voxel centres, i.e. on the voxel faces, with the corners of the
staircase cut diagonally; for a fractional occupancy array (values in [0, 1]) the crossing moves inside the
voxel with the occupancy, which places the boundary to sub-voxel precision. Every inside voxel centre lies
inside the traced contours and every outside one outside (by the even-odd rule), so reading the file back
on the CT grid gives the same voxels. Marching squares alone makes the polygon area of a slice the voxel
area less an eighth of a voxel per convex corner (about half a voxel per contour, -2% on a thin rod); the
contours of a binary mask are therefore shifted outwards by the small uniform distance (at most 0.2 voxel)
that makes each slice's polygon area equal its voxel area, so a planning system that measures volumes
from the contours finds the mask's volume. Holes come out as separate inner contours, and
islands in holes as contours inside those: the even-odd reading of the DICOM standard, which dicompyler,
SlicerRT and planning systems use. Collinear points are dropped.

The file
--------
An RT Structure Set (SOP class 1.2.840.10008.5.1.4.1.1.481.3) that references the planning CT: its study,
its series and every slice (Contour Image Sequence), its frame of reference. The patient and study modules
are copied from the CT (a planning system matches the structure set to the patient with them); nothing
here prints them. ROIs read from the clinic's structure set can be copied verbatim (every attribute and
point as the planning system wrote it), followed by the derived ROIs (PTV, PTV_Eval, SpinalCord_PRV02).
The file is Explicit VR Little Endian unless a contour is too long for a 16-bit value length, then
Implicit VR Little Endian (the DICOM default every system reads).
"""

from __future__ import annotations

import copy
import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .. import __version__
from ..geometry.masks import Mask
from ._pydicom_compat import write_file
from .dicom_image import ImageSeries, ras_to_lps
from .dicom_scan import RT_STRUCTURE_SET
from .errors import ExportError
from .rtstruct_read import StructureSet

#: Patient module and general study module attributes copied from the planning CT.
PATIENT_ATTRIBUTES = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientBirthTime",
    "PatientSex",
    "OtherPatientIDsSequence",
    "PatientComments",
    "PatientIdentityRemoved",
    "DeidentificationMethod",
    "DeidentificationMethodCodeSequence",
)
STUDY_ATTRIBUTES = (
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
    "StudyDescription",
)
TYPE2 = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
)

_MAX_EXPLICIT_VALUE = 0xFFFE


@dataclass
class RoiToWrite:
    """A structure to write from a mask (on the CT grid). ``occupancy`` (optional, [0, 1] floats on the same
    grid) places the contour to sub-voxel precision; the mask decides which slices are contoured."""

    name: str
    mask: Mask
    color: Tuple[float, float, float] = (0.5, 0.5, 0.5)
    interpreted_type: str = ""
    description: str = ""  # e.g. the recipe; written as ROI Description
    algorithm: str = "AUTOMATIC"
    occupancy: Optional[np.ndarray] = None
    # slice index k -> closed contours ((N, 3) RAS) on that slice, written as given instead of traced from the
    # mask: a structure built on contours (``contours_from_structure``); the mask then only checks the grid
    polygons: Optional[Dict[int, List[np.ndarray]]] = None


def default_interpreted_type(name: str) -> str:
    """RT ROI Interpreted Type from a structure name: PTV*, CTV*, GTV*, a PRV (AVOIDANCE), else ORGAN."""
    key = name.upper().replace(" ", "").replace("-", "_")
    if "PRV" in key:
        return "AVOIDANCE"
    for t in ("PTV", "CTV", "GTV"):
        if key.startswith(t):
            return t
    if key in ("BODY", "EXTERNAL", "SKIN", "OUTER_CONTOUR"):
        return "EXTERNAL"
    return "ORGAN"


def _drop_collinear(points: np.ndarray, tol: float = 1e-9) -> np.ndarray:
    p = points
    while len(p) > 3:
        prev, nxt = np.roll(p, 1, axis=0), np.roll(p, -1, axis=0)
        cross = (p[:, 0] - prev[:, 0]) * (nxt[:, 1] - p[:, 1]) - (p[:, 1] - prev[:, 1]) * (nxt[:, 0] - p[:, 0])
        keep = np.abs(cross) > tol
        if keep.all():
            break
        if keep.sum() < 3:
            break
        # drop every other collinear point per pass so neighbours are judged against kept points
        drop = np.flatnonzero(~keep)
        drop = drop[::2]
        mask = np.ones(len(p), bool)
        mask[drop] = False
        p = p[mask]
    return p


def slice_contours_ij(values: np.ndarray, level: float = 0.5) -> List[np.ndarray]:
    """Closed contours (no repeated end point) of a [j, i] slice at ``level``, as (N, 2) (i, j) indices."""
    try:
        import contourpy
    except ImportError as exc:  # desktop Slicer does not bundle it
        raise ExportError(
            "Writing an RTSTRUCT needs the contourpy package (marching squares). In Slicer's Python console run "
            "slicer.util.pip_install('contourpy'); elsewhere pip install contourpy."
        ) from exc

    a = np.asarray(values, dtype=np.float64)
    rows = np.flatnonzero((a > level).any(axis=1))
    cols = np.flatnonzero((a > level).any(axis=0))
    if rows.size == 0:
        return []
    j0, j1, i0, i1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    sub = np.pad(a[j0:j1, i0:i1], 1, mode="constant", constant_values=0.0)
    gen = contourpy.contour_generator(z=sub, name="serial", line_type=contourpy.LineType.Separate)
    out = []
    for line in gen.lines(level):
        line = np.asarray(line, dtype=np.float64)
        if len(line) > 1 and np.allclose(line[0], line[-1]):
            line = line[:-1]
        if len(line) < 3:
            continue
        line = line + np.array([i0 - 1.0, j0 - 1.0])
        out.append(_drop_collinear(line))
    return out


def _signed_area(ring: np.ndarray) -> float:
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


#: Largest outward shift (voxels) of the area-preserving offset: contour to voxel centre is >= 0.35 voxel.
MAX_AREA_OFFSET = 0.2


def area_preserving_offset(rings: List[np.ndarray], pixel_count: int) -> List[np.ndarray]:
    """Shift the rings of one slice away from the region they enclose so that the region's area (even-odd)
    equals ``pixel_count`` (the voxel area), to first order: every edge moves out by the same distance
    d = (pixel_count - area) / perimeter (in voxels, at most ``MAX_AREA_OFFSET``), vertices along the
    mitre of their two edges. Marching squares cuts 1/8 voxel off every convex staircase corner, about half a
    voxel per contour, which matters for small structures (-2% on a 2 mm radius rod at 1 mm pixels)."""
    if not rings:
        return rings
    signed = [_signed_area(r) for r in rings]
    total = sum(signed)
    orientation = 1.0 if total >= 0 else -1.0  # contourpy: the region on the left of travel
    perimeter = sum(float(np.sum(np.linalg.norm(np.roll(r, -1, axis=0) - r, axis=1))) for r in rings)
    if perimeter <= 0:
        return rings
    d = (pixel_count - abs(total)) / perimeter
    d = min(max(d, 0.0), MAX_AREA_OFFSET)
    if d == 0.0:
        return rings
    out = []
    for r in rings:
        e_in = r - np.roll(r, 1, axis=0)
        e_out = np.roll(r, -1, axis=0) - r
        e_in /= np.linalg.norm(e_in, axis=1, keepdims=True)
        e_out /= np.linalg.norm(e_out, axis=1, keepdims=True)
        # right-hand normals point away from a region that lies on the left
        n_in = orientation * np.column_stack([e_in[:, 1], -e_in[:, 0]])
        n_out = orientation * np.column_stack([e_out[:, 1], -e_out[:, 0]])
        denom = np.maximum(1.0 + np.sum(n_in * n_out, axis=1), 0.3)
        out.append(r + d * (n_in + n_out) / denom[:, None])
    return out


def contours_from_mask(
    mask: Mask, occupancy: Optional[np.ndarray] = None, level: float = 0.5, preserve_area: bool = True
) -> Dict[int, List[np.ndarray]]:
    """Slice index k -> closed contours as (N, 3) RAS points on that slice (see the module doc).

    ``preserve_area`` (binary masks only) applies ``area_preserving_offset`` so each slice's polygon area
    equals its voxel area; the voxels the contours enclose do not change."""
    g = mask.geometry
    values = mask.array if occupancy is None else np.asarray(occupancy, dtype=np.float64)
    if values.shape != g.shape:
        raise ExportError(f"Occupancy of {mask.name} has shape {values.shape}, its mask {g.shape}.")
    if occupancy is not None:
        # the mask decides which voxel centres are inside; keep the crossing at least 5% of a voxel away from
        # any centre so the written contour reads back to the same voxels
        margin = 0.05
        values = np.where(mask.array, np.maximum(values, level + margin), np.minimum(values, level - margin))
    out: Dict[int, List[np.ndarray]] = {}
    for k in np.flatnonzero(mask.array.any(axis=(1, 2))):
        rings = slice_contours_ij(values[k], level)
        if rings and preserve_area and occupancy is None:
            rings = area_preserving_offset(rings, int(np.count_nonzero(mask.array[k])))
        if rings:
            out[int(k)] = [g.ijk_to_ras_points(np.column_stack([r, np.full(len(r), float(k))])) for r in rings]
    return out


#: Consecutive points closer than this (mm) are merged before writing (the reader merges 0.001 mm).
WRITE_POINT_MERGE_MM = 0.002


def contours_from_structure(structure, geometry) -> Dict[int, List[np.ndarray]]:
    """Slice index k -> closed contours as (N, 3) RAS points of a contour structure (``dose.contours``) whose
    planes lie on ``geometry``'s slices: its polygons as they are (no tracing, no staircase), consecutive points
    closer than ``WRITE_POINT_MERGE_MM`` and collinear points dropped. A plane off the slices is an ExportError."""
    u, v, n = structure.basis
    nk = geometry.shape[0]
    out: Dict[int, List[np.ndarray]] = {}
    for plane in structure.planes:
        for ring in plane.rings:
            uv = np.asarray(ring, dtype=np.float64)
            step = np.linalg.norm(np.diff(uv, axis=0, append=uv[:1]), axis=1)
            uv = uv[step > WRITE_POINT_MERGE_MM] if np.count_nonzero(step > WRITE_POINT_MERGE_MM) >= 3 else uv
            uv = _drop_collinear(uv, 1e-9)
            if len(uv) < 3:
                continue
            ras = uv[:, :1] * u + uv[:, 1:2] * v + plane.position_mm * n
            k = geometry.ras_to_ijk_points(ras)[:, 2]
            kk = int(round(float(k.mean())))
            if np.max(np.abs(k - kk)) * geometry.spacing[2] > 0.01 or not 0 <= kk < nk:
                raise ExportError(
                    f"{structure.name}: its contour at {plane.position_mm:.2f} mm is not on a slice of the planning CT "
                    f"({geometry.describe()}); an RTSTRUCT for the planning system holds contours on the CT's slices."
                )
            out.setdefault(kk, []).append(ras)
    return out


def _ds_text(v: float) -> str:
    s = f"{v:.4f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def _contour_data(points_ras: np.ndarray) -> List[str]:
    return [_ds_text(v) for v in ras_to_lps(points_ras).ravel()]


def _check_name(name: str) -> str:
    name = str(name).strip()
    if not name or len(name) > 64 or "\\" in name:
        raise ExportError(f"ROI name '{name}' cannot be written: it must be 1-64 characters without '\\'.")
    return name


def _now() -> Tuple[str, str]:
    now = datetime.datetime.now()
    return now.strftime("%Y%m%d"), now.strftime("%H%M%S")


def build_rtstruct(
    ct: ImageSeries,
    rois: Sequence[RoiToWrite],
    source: Optional[StructureSet] = None,
    keep_source: Optional[Sequence[str]] = None,
    label: str = "SIBSpineSBRT",
    series_description: str = "SIBSpineSBRT planning volumes",
):
    """The RTSTRUCT as a pydicom FileDataset (not written). See ``write_rtstruct``."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence as DicomSequence
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

    if ct.frame_of_reference_uid == "":
        raise ExportError(
            f"The planning CT ({ct.label()}) has no Frame of Reference UID; an RTSTRUCT cannot reference it."
        )
    header = ct.reference_header
    date, time = _now()
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = RT_STRUCTURE_SET
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian

    if header is not None and "SpecificCharacterSet" in header:
        ds.SpecificCharacterSet = header.SpecificCharacterSet
    ds.InstanceCreationDate, ds.InstanceCreationTime = date, time
    ds.SOPClassUID = RT_STRUCTURE_SET
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    for name in PATIENT_ATTRIBUTES + STUDY_ATTRIBUTES:
        if header is not None and name in header:
            setattr(ds, name, copy.deepcopy(header[name].value))
        elif name in TYPE2:
            setattr(ds, name, "")
    ds.StudyInstanceUID = ct.study_uid or str(getattr(header, "StudyInstanceUID", "") or generate_uid())
    ds.Modality = "RTSTRUCT"
    ds.Manufacturer = "SIBSpineSBRT"
    ds.ManufacturerModelName = "SIBSpineSBRT"
    ds.SoftwareVersions = __version__
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 901
    ds.SeriesDescription = series_description[:64]
    ds.OperatorsName = ""
    # Frame of Reference module (in the RT Structure Set IOD of current editions of the standard)
    ds.FrameOfReferenceUID = ct.frame_of_reference_uid
    ds.PositionReferenceIndicator = str(getattr(header, "PositionReferenceIndicator", "") or "")
    ds.StructureSetLabel = label[:16]
    ds.StructureSetName = label[:64]
    ds.StructureSetDate, ds.StructureSetTime = date, time

    # referenced frame of reference -> study -> series -> every CT slice
    fr = Dataset()
    fr.FrameOfReferenceUID = ct.frame_of_reference_uid
    st = Dataset()
    st.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"  # Detached Study Management (retired; what TPSs write)
    st.ReferencedSOPInstanceUID = ds.StudyInstanceUID
    se = Dataset()
    se.SeriesInstanceUID = ct.series_uid
    images = []
    for uid in ct.slice_sop_uids:
        ci = Dataset()
        ci.ReferencedSOPClassUID = ct.sop_class_uid
        ci.ReferencedSOPInstanceUID = uid
        images.append(ci)
    se.ContourImageSequence = DicomSequence(images)
    st.RTReferencedSeriesSequence = DicomSequence([se])
    fr.RTReferencedStudySequence = DicomSequence([st])
    ds.ReferencedFrameOfReferenceSequence = DicomSequence([fr])

    roi_items, contour_items, observation_items = [], [], []
    names: List[str] = []
    used_numbers = set()
    if source is not None:
        src = source.dataset
        wanted = None if keep_source is None else set(keep_source)
        by_number = {int(i.ReferencedROINumber): i for i in getattr(src, "ROIContourSequence", [])}
        obs = {int(i.ReferencedROINumber): i for i in getattr(src, "RTROIObservationsSequence", [])}
        for item in getattr(src, "StructureSetROISequence", []):
            name = str(getattr(item, "ROIName", "") or "").strip()
            if wanted is not None and name not in wanted:
                continue
            number = int(item.ROINumber)
            frame = str(getattr(item, "ReferencedFrameOfReferenceUID", "") or "")
            if frame and frame != ct.frame_of_reference_uid:
                raise ExportError(
                    f"ROI '{name}' of {source.path or 'the structure set'} is on frame of reference {frame}, not the "
                    f"planning CT's ({ct.frame_of_reference_uid}); it cannot go into this RTSTRUCT."
                )
            roi_items.append(copy.deepcopy(item))
            if number in by_number:
                contour_items.append(copy.deepcopy(by_number[number]))
            if number in obs:
                observation_items.append(copy.deepcopy(obs[number]))
            names.append(name)
            used_numbers.add(number)

    next_number = max(used_numbers, default=0) + 1
    next_observation = max((int(getattr(o, "ObservationNumber", 0)) for o in observation_items), default=0) + 1
    slice_uid = dict(enumerate(ct.slice_sop_uids))
    for roi in rois:
        name = _check_name(roi.name)
        if name in names:
            raise ExportError(
                f"The structure set already has an ROI named '{name}'; the derived {name} would clash with it. Rename "
                f"the planning system's ROI (e.g. {name}_TPS) and export again, or leave it out of the copy."
            )
        if not roi.mask.geometry.same_grid(ct.geometry):
            raise ExportError(
                f"Mask '{name}' lies on {roi.mask.geometry.describe()}, not on the planning CT's grid "
                f"({ct.geometry.describe()}); build it on the CT grid to export it as contours on the CT slices."
            )
        number = next_number
        next_number += 1
        names.append(name)
        item = Dataset()
        item.ROINumber = number
        item.ReferencedFrameOfReferenceUID = ct.frame_of_reference_uid
        item.ROIName = name
        if roi.description:
            item.ROIDescription = roi.description[:1024]
        item.ROIGenerationAlgorithm = roi.algorithm
        item.ROIGenerationDescription = f"SIBSpineSBRT {__version__}"[:64]
        roi_items.append(item)

        rc = Dataset()
        rc.ROIDisplayColor = [int(round(255 * min(1.0, max(0.0, float(c))))) for c in roi.color]
        rc.ReferencedROINumber = number
        contours = []
        traced = roi.polygons if roi.polygons is not None else contours_from_mask(roi.mask, roi.occupancy)
        for k, rings in sorted(traced.items()):
            for ring in rings:
                c = Dataset()
                ci = Dataset()
                ci.ReferencedSOPClassUID = ct.sop_class_uid
                ci.ReferencedSOPInstanceUID = slice_uid[k]
                c.ContourImageSequence = DicomSequence([ci])
                c.ContourGeometricType = "CLOSED_PLANAR"
                c.NumberOfContourPoints = len(ring)
                c.ContourNumber = len(contours) + 1
                c.ContourData = _contour_data(ring)
                contours.append(c)
        if contours:
            rc.ContourSequence = DicomSequence(contours)
        contour_items.append(rc)

        ob = Dataset()
        ob.ObservationNumber = next_observation
        next_observation += 1
        ob.ReferencedROINumber = number
        ob.RTROIInterpretedType = roi.interpreted_type or default_interpreted_type(name)
        ob.ROIInterpreter = ""
        observation_items.append(ob)

    ds.StructureSetROISequence = DicomSequence(roi_items)
    ds.ROIContourSequence = DicomSequence(contour_items)
    ds.RTROIObservationsSequence = DicomSequence(observation_items)

    too_long = any(
        sum(len(str(v)) + 1 for v in np.atleast_1d(c.ContourData)) > _MAX_EXPLICIT_VALUE
        for rc in contour_items
        for c in getattr(rc, "ContourSequence", [])
    )
    if too_long:
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    return ds


def write_rtstruct(
    path,
    ct: ImageSeries,
    rois: Sequence[RoiToWrite],
    source: Optional[StructureSet] = None,
    keep_source: Optional[Sequence[str]] = None,
    label: str = "SIBSpineSBRT",
    series_description: str = "SIBSpineSBRT planning volumes",
) -> Path:
    """Write an RTSTRUCT for the planning CT ``ct``: the ROIs of ``source`` (all, or those named in
    ``keep_source``) copied verbatim, then ``rois`` traced from their masks. Returns the path written.

    Raises ExportError for a mask not on the CT grid, a name clash with a copied ROI, or a source ROI on
    another frame of reference.
    """
    ds = build_rtstruct(ct, rois, source, keep_source, label, series_description)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file(ds, str(path))
    return path
