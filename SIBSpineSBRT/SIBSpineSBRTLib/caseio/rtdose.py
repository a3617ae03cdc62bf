"""RTDOSE: a multi-frame dose grid with its units, read with pydicom.

* Values: stored pixel values x Dose Grid Scaling (3004,000E), in Dose Units (3004,0002): GY or CGY.
  Missing Dose Units is an error (``DoseUnitsMissingError``), never a guess; RELATIVE is refused (not a
  physical dose); a missing Dose Grid Scaling is an error (it is mandatory with pixel data); a dose that is
  zero everywhere is an error (no plan's dose).
* Grid: frame f lies at Image Position (Patient) + GridFrameOffsetVector[f] * n, n = row x column
  direction. The offsets are relative when the first is 0 (the usual case); the older absolute form (the
  first offset equals the z of Image Position, allowed only for an axial orientation) is converted. Offsets
  may decrease (k then runs along -n) but must be evenly spaced.
* Geometry is converted from DICOM LPS to RAS exactly as for images (see ``dicom_image``), so any patient
  orientation works.
* Dose Summation Type (PLAN, FRACTION, BEAM, ...) is kept, not acted on: the case loader chooses (and sums a
  plan's beam doses with ``sum_rtdoses`` when they are all its beams, on one grid).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..dose.grid import DOSE_UNITS_TO_GY, DoseGrid
from ..geometry.grid import ImageGeometry
from ._pydicom_compat import pixel_array
from .dicom_image import geometry_from_lps, orientation_vectors
from .dicom_scan import read_dataset
from .errors import DoseUnitsMissingError, RTDoseError

OFFSET_TOLERANCE_MM = 0.01


@dataclass
class RTDose:
    """A dose grid as stored: ``values`` in ``units`` (after Dose Grid Scaling) on ``geometry`` (RAS)."""

    path: Optional[Path]
    values: np.ndarray = field(repr=False)
    geometry: ImageGeometry
    units: str  # "GY" or "CGY"
    scaling: float
    summation_type: str
    dose_type: str
    frame_of_reference_uid: str
    sop_instance_uid: str
    series_uid: str = ""
    study_uid: str = ""
    referenced_plan_uid: str = ""

    def to_dose_grid(self, name: str = "Dose") -> DoseGrid:
        """The dose in Gy, as the DVH engine takes it."""
        return DoseGrid.from_array(self.values, self.geometry, self.units, name)

    def value_gy_at_index(self, k: int, j: int, i: int) -> float:
        return float(self.values[k, j, i]) * DOSE_UNITS_TO_GY[self.units]


def _frame_offsets(ds, where: str, ipp: np.ndarray, n: np.ndarray, frames: int) -> np.ndarray:
    if frames == 1 and "GridFrameOffsetVector" not in ds:
        return np.zeros(1)
    if "GridFrameOffsetVector" not in ds:
        raise RTDoseError(
            f"{where}: a {frames}-frame dose without GridFrameOffsetVector (3004,000C): the frame positions are "
            "unknown. Re-export the dose from the planning system."
        )
    gfov = np.array([float(x) for x in np.atleast_1d(ds.GridFrameOffsetVector)], dtype=np.float64)
    if gfov.size != frames:
        raise RTDoseError(
            f"{where}: GridFrameOffsetVector has {gfov.size} values but the dose has {frames} frames. Re-export it."
        )
    if abs(gfov[0]) > OFFSET_TOLERANCE_MM:
        # absolute form: z coordinates of the frames; defined only for an axial (1,0,0,0,1,0) orientation
        if abs(abs(n[2]) - 1.0) > 1e-4 or abs(gfov[0] - ipp[2]) > OFFSET_TOLERANCE_MM:
            raise RTDoseError(
                f"{where}: GridFrameOffsetVector starts at {gfov[0]:.3f} mm, which is neither 0 (relative offsets) "
                f"nor the z of Image Position (Patient) ({ipp[2]:.3f} mm, absolute offsets on an axial grid). "
                "Re-export the dose."
            )
        gfov = (gfov - ipp[2]) * n[2]
    return gfov


def read_rtdose(source) -> RTDose:
    """Read an RTDOSE file (path) or pydicom dataset; see the module doc for the rules and errors."""
    ds = read_dataset(source) if isinstance(source, (str, Path)) else source
    path = Path(source) if isinstance(source, (str, Path)) else None
    where = str(path) if path is not None else "RTDOSE"

    units = str(getattr(ds, "DoseUnits", "") or "").strip().upper()
    if not units:
        raise DoseUnitsMissingError(
            f"{where}: the RTDOSE has no DoseUnits (3004,0002), so its values cannot be read as Gy or cGy. Re-export "
            "the dose from the planning system with absolute dose units."
        )
    if units not in DOSE_UNITS_TO_GY:
        raise RTDoseError(
            f"{where}: DoseUnits is '{units}', which is not a physical dose (GY or CGY). Export the absolute dose."
        )
    if "PixelData" not in ds:
        raise RTDoseError(f"{where}: the RTDOSE holds no dose grid (no pixel data); it may hold only DVHs.")
    if "DoseGridScaling" not in ds or ds.DoseGridScaling in (None, ""):
        raise RTDoseError(
            f"{where}: DoseGridScaling (3004,000E) is missing, so stored values cannot be converted to dose. "
            "Re-export the dose."
        )
    scaling = float(ds.DoseGridScaling)
    if not np.isfinite(scaling) or scaling <= 0:
        raise RTDoseError(f"{where}: DoseGridScaling is {scaling}; it must be a positive number. Re-export the dose.")
    for name in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"):
        if name not in ds:
            raise RTDoseError(f"{where}: {name} is missing, so the dose grid cannot be placed. Re-export the dose.")

    r, c, n = orientation_vectors(ds.ImageOrientationPatient, where)
    ipp = np.array([float(x) for x in ds.ImagePositionPatient], dtype=np.float64)
    try:
        stored = pixel_array(ds)
    except Exception as exc:
        raise RTDoseError(f"{where}: the dose pixel data cannot be decoded ({exc}). Re-export the dose.") from exc
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    stored = np.asarray(stored).reshape(frames, int(ds.Rows), int(ds.Columns))
    offsets = _frame_offsets(ds, where, ipp, n, frames)
    if frames > 1:
        steps = np.diff(offsets)
        step = float(np.median(steps))
        if abs(step) < OFFSET_TOLERANCE_MM:
            raise RTDoseError(f"{where}: two dose frames share one position (GridFrameOffsetVector). Re-export it.")
        if np.any(np.abs(steps - step) > OFFSET_TOLERANCE_MM + 1e-3 * abs(step)):
            raise RTDoseError(
                f"{where}: the dose frames are not evenly spaced (GridFrameOffsetVector steps from "
                f"{steps.min():.3g} to {steps.max():.3g} mm). Re-export the dose on a regular grid."
            )
    else:
        step = float(getattr(ds, "SliceThickness", 0) or 0) or 1.0
    slice_dir = n if step > 0 else -n
    sj, si = (float(x) for x in ds.PixelSpacing)
    origin = ipp + offsets[0] * n
    geometry = geometry_from_lps(origin, r, c, slice_dir, (si, sj, abs(step)), stored.shape)
    if not np.any(stored):
        # a grid of zeros is no plan's dose (an uncalculated plan, an empty export); reviewed, every metric would be
        # 0 Gy give or take rounding (-1e-9 Gy), and BED/EQD2 of a negative dose is undefined
        raise RTDoseError(
            f"{where}: the dose is zero everywhere: all {stored.size} stored values ({frames} frame(s) of "
            f"{int(ds.Rows)}x{int(ds.Columns)}) are 0, so there is no dose to review. Calculate the plan's dose in "
            "the planning system and export that RTDOSE."
        )
    if stored.min() < 0:
        raise RTDoseError(
            f"{where}: the dose has negative values (down to {float(stored.min()) * scaling:.3g} {units}); a physical "
            "dose cannot be negative. Export the plan's calculated dose again."
        )
    values = stored.astype(np.float64) * scaling
    ref_plan = ""
    if "ReferencedRTPlanSequence" in ds and len(ds.ReferencedRTPlanSequence):
        ref_plan = str(getattr(ds.ReferencedRTPlanSequence[0], "ReferencedSOPInstanceUID", "") or "")
    return RTDose(
        path=path,
        values=values,
        geometry=geometry,
        units=units,
        scaling=scaling,
        summation_type=str(getattr(ds, "DoseSummationType", "") or "").upper(),
        dose_type=str(getattr(ds, "DoseType", "") or "").upper(),
        frame_of_reference_uid=str(getattr(ds, "FrameOfReferenceUID", "") or ""),
        sop_instance_uid=str(getattr(ds, "SOPInstanceUID", "") or ""),
        series_uid=str(getattr(ds, "SeriesInstanceUID", "") or ""),
        study_uid=str(getattr(ds, "StudyInstanceUID", "") or ""),
        referenced_plan_uid=ref_plan,
    )


def sum_rtdoses(doses: Sequence[RTDose], summation_type: str = "PLAN") -> RTDose:
    """The voxel-wise sum of doses on one grid (e.g. a plan's per-beam RTDOSEs), in Gy, as one ``RTDose`` of
    ``summation_type``. Grids that differ (shape or any voxel centre by more than ``OFFSET_TOLERANCE_MM``),
    another frame of reference or another dose type are refused (``RTDoseError``): no resampling here."""
    if not doses:
        raise ValueError("No dose to sum.")
    first = doses[0]

    def name(d: RTDose) -> str:
        return str(d.path) if d.path is not None else f"RTDOSE {d.sop_instance_uid}"

    for d in doses[1:]:
        if not d.geometry.same_grid(first.geometry, OFFSET_TOLERANCE_MM):
            raise RTDoseError(
                f"{name(d)} is on another dose grid ({d.geometry.describe()}) than {name(first)} "
                f"({first.geometry.describe()}): doses are summed only on one grid. Export the doses on one dose grid, "
                "or export the plan's total dose."
            )
        if d.frame_of_reference_uid != first.frame_of_reference_uid:
            raise RTDoseError(f"{name(d)} and {name(first)} lie in different frames of reference: they are not summed.")
        if d.dose_type != first.dose_type:
            raise RTDoseError(
                f"{name(d)} is a {d.dose_type or 'unstated'} dose and {name(first)} a {first.dose_type or 'unstated'} "
                "dose: they are not summed."
            )
    total = np.zeros(first.values.shape, np.float64)
    for d in doses:
        total += d.values * DOSE_UNITS_TO_GY[d.units]
    return RTDose(
        path=first.path,
        values=total,
        geometry=first.geometry,
        units="GY",
        scaling=1.0,
        summation_type=summation_type,
        dose_type=first.dose_type,
        frame_of_reference_uid=first.frame_of_reference_uid,
        sop_instance_uid=first.sop_instance_uid,
        series_uid=first.series_uid,
        study_uid=first.study_uid,
        referenced_plan_uid=first.referenced_plan_uid,
    )
