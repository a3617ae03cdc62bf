"""CT and MR series to a ``[k, j, i]`` array on an ``ImageGeometry`` (RAS), with the slice checks a plan
review needs: one size, orientation and frame of reference for every slice; no duplicated, missing or
irregularly spaced slices; no gantry tilt; and, when the folder holds a structure set drawn on the series,
some of its contours inside the series' images (an orientation flipped in the header only places the images
elsewhere, with every slice still consistent with the others).

DICOM to RAS
------------
DICOM patient coordinates are LPS; Slicer's are RAS: negate x and y. For a slice with Image Position
(Patient) ``p`` (the centre of its first pixel), Image Orientation (Patient) ``(r, c)`` (unit vectors along
a row, i.e. increasing column index i, and down a column, increasing row index j) and Pixel Spacing
``(sj, si)`` (row spacing first), pixel (i, j) lies at ``p + i*si*r + j*sj*c``. Slices are sorted by their
position along the normal ``n = r x c``, so k runs along +n, and the grid's IJK-to-RAS directions are
``diag(-1, -1, 1) @ [r, c, n]``. Any patient position (head or feet first, supine, prone, decubitus)
follows from the same formula.

Pixel values are decoded with pydicom and mapped through the modality LUT (Rescale Slope/Intercept), so a
CT holds Hounsfield units. A compressed transfer syntax pydicom has no decoder for is read with
SimpleITK (GDCM) instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ..geometry.grid import ImageGeometry
from ._pydicom_compat import apply_modality_lut, pixel_array
from .dicom_scan import DicomScan, ImageSeriesFiles, read_dataset, series_label
from .errors import (
    CorruptDicomError,
    DuplicateSliceError,
    MissingSliceError,
    MixedSeriesError,
    SeriesGeometryError,
    UnsupportedSeriesError,
)

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])

#: Two slices closer than this along the normal are the same slice (mm).
DUPLICATE_TOLERANCE_MM = 0.01
#: Allowed deviation of a slice step from the series' step: this many mm plus this fraction of the step.
SPACING_TOLERANCE_MM = 0.02
SPACING_TOLERANCE_FRACTION = 0.01
#: Largest in-plane drift of slice positions (gantry tilt) accepted (mm).
TILT_TOLERANCE_MM = 0.05
#: Contours sampled per ROI when checking that a structure set drawn on a series lies in its images.
CONTOURS_CHECKED_PER_ROI = 5


def lps_to_ras(points) -> np.ndarray:
    """(N, 3) LPS points (mm) to RAS (the same map converts back)."""
    return np.asarray(points, dtype=np.float64).reshape(-1, 3) * np.array([-1.0, -1.0, 1.0])


ras_to_lps = lps_to_ras


def orientation_vectors(iop: Sequence[float], where: str = ""):
    """Row direction r, column direction c and normal n (unit LPS vectors) from Image Orientation (Patient)."""
    v = np.asarray([float(x) for x in iop], dtype=np.float64)
    if v.shape != (6,):
        raise MixedSeriesError(f"{where}: Image Orientation (Patient) must have 6 values; got {len(v)}.")
    r, c = v[:3], v[3:]
    if abs(np.linalg.norm(r) - 1) > 1e-3 or abs(np.linalg.norm(c) - 1) > 1e-3 or abs(r @ c) > 1e-3:
        raise UnsupportedSeriesError(
            f"{where}: Image Orientation (Patient) {list(v)} is not two orthogonal unit vectors; re-export the series."
        )
    r = r / np.linalg.norm(r)
    c = c - r * (r @ c)
    c = c / np.linalg.norm(c)
    return r, c, np.cross(r, c)


def geometry_from_lps(origin_lps, row_dir, col_dir, slice_dir, spacing_ijk, shape_kji) -> ImageGeometry:
    """ImageGeometry (RAS) of a grid given in DICOM terms: the first voxel's LPS centre, the LPS unit
    directions of i (along a row), j (down a column) and k, and the spacing along i, j, k."""
    directions = LPS_TO_RAS @ np.column_stack([row_dir, col_dir, slice_dir])
    origin = LPS_TO_RAS @ np.asarray(origin_lps, dtype=np.float64)
    return ImageGeometry(
        tuple(shape_kji), tuple(origin), tuple(float(s) for s in spacing_ijk), tuple(map(tuple, directions))
    )


@dataclass
class ImageSeries:
    """A loaded image series. ``slice_sop_uids[k]`` is the SOP Instance UID of slice k (for RTSTRUCT
    references); ``reference_header`` is the first slice's header (patient and study modules), never printed."""

    series_uid: str
    study_uid: str
    modality: str
    sop_class_uid: str
    frame_of_reference_uid: str
    geometry: ImageGeometry
    array: np.ndarray = field(repr=False)
    slice_sop_uids: List[str] = field(default_factory=list)
    slice_files: List[Path] = field(default_factory=list, repr=False)
    description: str = ""
    number: str = ""
    reference_header: object = field(default=None, repr=False)

    def label(self) -> str:
        return series_label(self.modality, self.number, self.description)


def _slice_values(ds, path: Path) -> np.ndarray:
    """Modality values (e.g. HU) of one slice as float64 [j, i]."""
    try:
        raw = pixel_array(ds)
    except Exception as exc:
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        if ts is not None and ts.is_compressed:
            return _slice_values_sitk(path, exc)
        raise CorruptDicomError(
            f"{path}: the pixel data cannot be decoded ({type(exc).__name__}: {exc}). Re-export the series."
        ) from exc
    return np.asarray(apply_modality_lut(raw, ds), dtype=np.float64)


def _slice_values_sitk(path: Path, cause: Exception) -> np.ndarray:
    import locale

    saved = locale.setlocale(locale.LC_ALL, None)  # GDCM may switch the process locale; keep the caller's
    try:
        import SimpleITK as sitk

        img = sitk.ReadImage(str(path), imageIO="GDCMImageIO")  # GDCM applies Rescale Slope/Intercept
        arr = sitk.GetArrayFromImage(img)
    except Exception as exc:
        raise CorruptDicomError(
            f"{path}: compressed pixel data that neither pydicom ({cause}) nor SimpleITK ({exc}) can decode. "
            "Re-export the series uncompressed."
        ) from exc
    finally:
        locale.setlocale(locale.LC_ALL, saved)
    return np.asarray(arr, dtype=np.float64).reshape(arr.shape[-2:])


def _same(a, b, tol=1e-4) -> bool:
    return np.allclose(np.asarray(a, float), np.asarray(b, float), atol=tol)


def _check_consistent(files, label: str) -> None:
    first = files[0]
    h0 = first.header
    for f in files[1:]:
        h = f.header
        for name, equal in (
            ("Modality", lambda a, b: str(a) == str(b)),
            ("FrameOfReferenceUID", lambda a, b: str(a) == str(b)),
            ("Rows", lambda a, b: int(a) == int(b)),
            ("Columns", lambda a, b: int(a) == int(b)),
            ("PixelSpacing", lambda a, b: _same(a, b, 1e-4)),
            ("ImageOrientationPatient", lambda a, b: _same(a, b, 1e-4)),
        ):
            a, b = getattr(h0, name, None), getattr(h, name, None)
            if (a is None) != (b is None) or (a is not None and not equal(a, b)):
                what = "frame of reference" if name == "FrameOfReferenceUID" else name
                raise MixedSeriesError(
                    f"{label}: files {first.path} and {f.path} share a series UID but differ in {what}; they are "
                    "not one series. Export each series into its own folder (or re-export the series)."
                )


def _blame_corrupt(series_uid: str, files, scan: Optional[DicomScan]) -> str:
    """The sentence of a gap message naming the corrupt files that may be the missing slices: those whose
    readable part names this series, else unidentified ones in the series' folders."""
    if scan is None:
        return ""
    corrupt = scan.corrupt_in_series(series_uid)
    if corrupt:
        return " Corrupt file(s) of this series were left out: " + "; ".join(str(x.path) for x in corrupt) + "."
    unknown = scan.corrupt_unidentified({f.path.parent for f in files})
    if unknown:
        return (
            " Unreadable file(s) beside the series' files, whose series cannot be told, may be the missing slice(s): "
            + "; ".join(x.reason.rstrip(".") for x in unknown)
            + "."
        )
    return ""


def _contour_samples(ds, series_uid: str, sop_uids: set) -> Tuple[int, List[np.ndarray]]:
    """(ROIs sampled, (n, 3) LPS contour points) of a structure set drawn on the series: one that references the
    series, or whose contours reference its images; a few contours per ROI, spread over the ROI's list."""
    referenced = {
        str(getattr(se, "SeriesInstanceUID", "") or "")
        for fr in getattr(ds, "ReferencedFrameOfReferenceSequence", []) or []
        for st in getattr(fr, "RTReferencedStudySequence", []) or []
        for se in getattr(st, "RTReferencedSeriesSequence", []) or []
    }
    on_series = series_uid in referenced
    rois, points = 0, []
    for roi in getattr(ds, "ROIContourSequence", []) or []:
        contours = list(getattr(roi, "ContourSequence", []) or [])
        if not contours:
            continue
        picks = sorted({int(round(x)) for x in np.linspace(0, len(contours) - 1, CONTOURS_CHECKED_PER_ROI)})
        taken = 0
        for item in (contours[i] for i in picks):
            refs = {
                str(getattr(ci, "ReferencedSOPInstanceUID", "")) for ci in getattr(item, "ContourImageSequence", [])
            }
            if not (on_series or refs & sop_uids):
                continue
            try:
                data = np.asarray([float(x) for x in np.atleast_1d(getattr(item, "ContourData", []))], np.float64)
            except (TypeError, ValueError):
                continue
            if data.size and data.size % 3 == 0 and np.all(np.isfinite(data)):
                points.append(data.reshape(-1, 3))
                taken += 1
        rois += taken > 0
    return rois, points


def _check_structures_inside(label, files, first_lps, axes, spacing, size, scan: DicomScan) -> None:
    """SeriesGeometryError when a structure set drawn on this series (it references the series or its images)
    has not one sampled contour point inside the series' volume: the series' header (orientation, positions)
    then does not place its images where they were contoured, e.g. an orientation flipped in the header only."""
    series_uid = str(files[0].series_uid)
    sop_uids = {f.sop_instance_uid for f in files}
    r, c, n = axes
    to_index = np.linalg.inv(np.column_stack([r * spacing[0], c * spacing[1], n * spacing[2]]))
    for f in scan.rtstructs:
        if f.frame_of_reference_uid and f.frame_of_reference_uid != files[0].frame_of_reference_uid:
            continue  # another frame of reference: the case loader refuses it with its own message
        try:
            rois, points = _contour_samples(f.header, series_uid, sop_uids)
        except Exception:  # a header pydicom cannot walk: the structure set reader reports it
            continue
        if not points:
            continue
        ijk = (np.vstack(points) - np.asarray(first_lps)) @ to_index.T
        upper = np.asarray(size, float) - 0.5
        inside = np.all((ijk >= -1.5) & (ijk <= upper + 1.0), axis=1)  # one voxel of slack around the volume
        if inside.any():
            continue
        iop = [round(float(x), 4) + 0.0 for x in files[0].header.ImageOrientationPatient]
        corner = first_lps + (np.asarray(size, float) - 1) @ np.vstack([r * spacing[0], c * spacing[1], n * spacing[2]])
        raise SeriesGeometryError(
            f"{label}: none of the {len(ijk)} contour points sampled from {rois} ROI(s) of the structure set {f.path}, "
            f"which is drawn on this series, lies inside the series' images ({size[0]}x{size[1]}x{size[2]} voxels "
            f"from ({', '.join(f'{v:.1f}' for v in first_lps)}) to ({', '.join(f'{v:.1f}' for v in corner)}) mm, "
            f"LPS). The series' Image Orientation (Patient) {iop} and Image Position (Patient) disagree with where "
            "its structures were drawn: the orientation was probably flipped (or the positions rewritten) in the "
            "header only. Re-export the CT and its structure set together from the planning system."
        )


def read_image_series(series: ImageSeriesFiles, scan: Optional[DicomScan] = None) -> ImageSeries:
    """Load one image series (the files of one Series Instance UID) with the checks in the module doc.

    ``scan`` (the folder scan) lets a gap be blamed on the corrupt file that caused it.
    """
    files = list(series.files)
    label = f"{series.label()} (series UID {series.series_uid})"
    if not files:
        raise MissingSliceError(f"{label} has no readable files.")
    for f in files:
        if int(getattr(f.header, "NumberOfFrames", 1) or 1) > 1:
            raise UnsupportedSeriesError(
                f"{label}: {f.path} is a multi-frame (enhanced) image, which this reader does not handle. Export the "
                "series as single-frame (classic) CT/MR images."
            )
        if int(getattr(f.header, "SamplesPerPixel", 1) or 1) != 1:
            raise UnsupportedSeriesError(f"{label}: {f.path} is a colour image; a planning image must be greyscale.")
    _check_consistent(files, label)
    h0 = files[0].header
    r, c, n = orientation_vectors(h0.ImageOrientationPatient, f"{label} ({files[0].path})")
    positions = np.array([[float(x) for x in f.header.ImagePositionPatient] for f in files])
    along = positions @ n
    order = np.argsort(along, kind="stable")
    files = [files[i] for i in order]
    positions, along = positions[order], along[order]

    # duplicates
    if len(files) > 1:
        steps = np.diff(along)
        dup = np.flatnonzero(steps < DUPLICATE_TOLERANCE_MM)
        if dup.size:
            a, b = files[dup[0]], files[dup[0] + 1]
            same = " (the same SOP instance twice)" if a.sop_instance_uid == b.sop_instance_uid else ""
            raise DuplicateSliceError(
                f"{label}: {a.path} and {b.path} are both the slice at {along[dup[0]]:.2f} mm{same}. Remove the "
                "duplicate file, or export each series into its own folder."
            )
    # tilt: every slice position on the line through the first along the normal
    drift = positions - positions[0] - np.outer(along - along[0], n)
    if len(files) > 1 and np.max(np.linalg.norm(drift, axis=1)) > TILT_TOLERANCE_MM:
        raise UnsupportedSeriesError(
            f"{label}: slice positions drift {np.max(np.linalg.norm(drift, axis=1)):.2f} mm sideways (gantry tilt or "
            "sheared stack), which a regular grid cannot hold. Resample the series to an orthogonal grid in the "
            "planning system before export."
        )
    # spacing
    if len(files) > 1:
        steps = np.diff(along)
        step = float(np.median(steps))
        tol = SPACING_TOLERANCE_MM + SPACING_TOLERANCE_FRACTION * step
        bad = np.flatnonzero(np.abs(steps - step) > tol)
        if bad.size:
            g = int(bad[0])
            a, b = files[g], files[g + 1]
            ratio = steps[g] / step
            blame = _blame_corrupt(series.series_uid, files, scan)
            if ratio > 1.5 and abs(ratio - round(ratio)) * step <= tol:
                raise MissingSliceError(
                    f"{label}: {int(round(ratio)) - 1} slice(s) missing between {a.path} ({along[g]:.2f} mm) and "
                    f"{b.path} ({along[g + 1]:.2f} mm); the series step is {step:.3g} mm.{blame} Re-export the "
                    "complete series."
                )
            raise MissingSliceError(
                f"{label}: irregular slice spacing: {steps[g]:.3g} mm between {a.path} and {b.path}, but "
                f"{step:.3g} mm elsewhere.{blame} Re-export the series with uniform spacing (or resample it)."
            )
    else:
        step = float(getattr(h0, "SpacingBetweenSlices", 0) or getattr(h0, "SliceThickness", 0) or 1.0)
    lost = scan.corrupt_in_series(series.series_uid) if scan is not None else []
    if lost:  # no gap: the unreadable slices were at an end of the stack, which would silently be shorter
        raise MissingSliceError(
            f"{label}: {len(lost)} file(s) of this series cannot be read and were left out ("
            + "; ".join(x.reason.rstrip(".") for x in lost)
            + f"), so the series would lose slice(s) at an end of its {len(files)}-slice stack. Re-export the "
            "complete series."
        )

    ni, nj = int(h0.Columns), int(h0.Rows)
    sj, si = (float(x) for x in h0.PixelSpacing)
    if scan is not None:
        _check_structures_inside(label, files, positions[0], (r, c, n), (si, sj, step), (ni, nj, len(files)), scan)
    values = np.empty((len(files), nj, ni), dtype=np.float64)
    slopes_integral = True
    for k, f in enumerate(files):
        ds = read_dataset(f.path)
        v = _slice_values(ds, f.path)
        if v.shape != (nj, ni):
            raise MixedSeriesError(f"{label}: {f.path} holds {v.shape} pixels, expected {(nj, ni)}.")
        values[k] = v
        slope = float(getattr(ds, "RescaleSlope", 1) or 1)
        intercept = float(getattr(ds, "RescaleIntercept", 0) or 0)
        slopes_integral &= slope == int(slope) and intercept == int(intercept)
    if slopes_integral and values.min() >= -32768 and values.max() <= 32767:
        array = values.astype(np.int16)
    else:
        array = values.astype(np.float32)
    geometry = geometry_from_lps(positions[0], r, c, n, (si, sj, step), array.shape)
    return ImageSeries(
        series_uid=series.series_uid,
        study_uid=files[0].study_uid,
        modality=series.modality,
        sop_class_uid=files[0].sop_class_uid,
        frame_of_reference_uid=files[0].frame_of_reference_uid,
        geometry=geometry,
        array=array,
        slice_sop_uids=[f.sop_instance_uid for f in files],
        slice_files=[f.path for f in files],
        description=series.description,
        number=series.number,
        reference_header=h0,
    )
