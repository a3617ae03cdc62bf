"""Which plan was reviewed: the identity of every DICOM object a review used, for metrics.json ``inputs`` and
the report header. Never the patient's name, ID or birth date (no patient module attribute is read).

For each object: its kind, SOP Class (name and UID), SOP Instance UID (a series: the series UID and slice
count), label, date and time, the system that wrote it (manufacturer, model, software versions) and the
sha256 of its file (a series: of its files' hashes in slice order).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

#: The dose grid spacing above which a warning is given (AAPM TG-101 advises <= 2 mm for SBRT).
COARSE_DOSE_GRID_MM = 2.0

_LABELS = ("RTPlanLabel", "StructureSetLabel", "SeriesDescription")
_DATES = ("RTPlanDate", "StructureSetDate", "ContentDate", "InstanceCreationDate", "SeriesDate")
_TIMES = ("RTPlanTime", "StructureSetTime", "ContentTime", "InstanceCreationTime", "SeriesTime")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _first(ds, keywords: Sequence[str]) -> str:
    for k in keywords:
        v = getattr(ds, k, None)
        if v not in (None, ""):
            return str(v)
    return ""


def _header(path: Path):
    import pydicom

    return pydicom.dcmread(str(path), stop_before_pixels=True, force=True)


def _describe(ds, kind: str) -> Dict[str, Any]:
    from pydicom.uid import UID

    sop_class = str(getattr(ds, "SOPClassUID", ""))
    return {
        "kind": kind,
        "sop_class": UID(sop_class).name if sop_class else "",
        "sop_class_uid": sop_class,
        "series_uid": str(getattr(ds, "SeriesInstanceUID", "")),
        "label": _first(ds, _LABELS),
        "date": _first(ds, _DATES),
        "time": _first(ds, _TIMES),
        "manufacturer": str(getattr(ds, "Manufacturer", "")),
        "model": str(getattr(ds, "ManufacturerModelName", "")),
        "software_versions": str(getattr(ds, "SoftwareVersions", "")),
    }


def object_identity(path: Optional[Path], kind: str) -> Optional[Dict[str, Any]]:
    """The identity of one DICOM object (RTSTRUCT, RTDOSE, RTPLAN) from its file; None without a file."""
    if path is None or not Path(path).is_file():
        return None
    ds = _header(Path(path))
    out = _describe(ds, kind)
    out["sop_instance_uid"] = str(getattr(ds, "SOPInstanceUID", ""))
    out["sha256"] = _sha256(Path(path))
    return out


def series_identity(files: Sequence[Path], kind: str) -> Optional[Dict[str, Any]]:
    """The identity of an image series from its slice files (in slice order)."""
    files = [Path(f) for f in files if f]
    if not files:
        return None
    out = _describe(_header(files[0]), kind)
    out["slices"] = len(files)
    out["sha256"] = hashlib.sha256("".join(_sha256(f) for f in files).encode()).hexdigest()
    return out


def case_identity(case, level_source: str = "") -> Dict[str, Any]:
    """``inputs`` of metrics.json for a loaded ``caseio.case_loader.DicomCase``."""
    ct = series_identity(getattr(case.ct_series, "slice_files", []), "CT")
    structures = object_identity(getattr(case.structure_set, "path", None), "RTSTRUCT")
    rtdose = getattr(case, "rtdose", None)
    dose = object_identity(getattr(rtdose, "path", None), "RTDOSE")
    if dose is not None and getattr(rtdose, "geometry", None) is not None:
        dose["grid_spacing_mm"] = [round(float(s), 4) for s in rtdose.geometry.spacing]
    plan = None
    p = getattr(case, "prescription", None)
    if p is not None:
        plan = object_identity(getattr(p, "path", None), "RTPLAN") or {"kind": "RTPLAN"}
        plan["prescription"] = {
            "total_dose_gy": p.total_dose_gy,
            "fractions": p.fractions,
            "dose_per_fraction_gy": p.dose_per_fraction_gy,
            "as_written": p.describe(),
        }
    return {
        "ct": ct,
        "rtstruct": structures,
        "rtdose": dose,
        "rtplan": plan,
        "mr": [m for m in (_mr_identity(node) for node in getattr(case, "mr", [])) if m],
        "level_source": level_source,
    }


def _mr_identity(node) -> Optional[Dict[str, Any]]:
    """An MR series as the loader added it: its label and series UID (node attributes, no file read)."""
    from .case_loader import SERIES_UID_ATTRIBUTE

    return {"kind": "MR", "label": node.GetName(), "series_uid": node.GetAttribute(SERIES_UID_ATTRIBUTE) or ""}


def dose_grid_warnings(identity: Dict[str, Any]) -> List[str]:
    """A warning when the dose grid is coarser than COARSE_DOSE_GRID_MM along any axis."""
    dose = identity.get("rtdose") or {}
    spacing = dose.get("grid_spacing_mm")
    if not spacing or max(spacing) <= COARSE_DOSE_GRID_MM + 1e-6:
        return []
    text = " x ".join(f"{s:g}" for s in spacing)
    return [
        f"Warning: the dose grid is {text} mm, coarser than {COARSE_DOSE_GRID_MM:g} mm (AAPM TG-101 advises a grid of "
        "2 mm or finer for SBRT): small-volume metrics such as D0.03cc depend on it. Recalculate on a finer grid if "
        "a value is near its limit."
    ]
