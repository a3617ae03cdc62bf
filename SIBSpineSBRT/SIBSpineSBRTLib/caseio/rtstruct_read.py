"""RTSTRUCT: ROIs as raw contours (kept for a contour-based DVH) and as masks on the planning CT grid.

Reading keeps every ROI with its number, name, colour, interpreted type, frame of reference and contours
(LPS points with their geometric type and referenced image). Open contours and points are kept raw, they
are just not part of a mask. ROIs are never merged by name: two ROIs with one name are two structures, keyed
``SpinalCord [ROI 3]`` and ``SpinalCord [ROI 7]`` (``roi_keys``; ``protocol.roles`` refuses to guess which).

Closed planar contours are checked as they are read (``check_contour``):

* repaired, and said so (a ``DicomWarning`` and ``StructureSet.messages``), only what is unambiguous: a point
  repeated consecutively, and an explicit closing point equal to the first (both within 0.001 mm);
* refused: a contour with fewer than 3 distinct points, or one whose edges cross (a bow-tie: the inside is
  not what was drawn). The whole ROI is then left out (``StructureSet.refused``, with the reason naming the
  ROI, its number and the slice's DICOM z), so a protocol role it would have filled is missing, never
  evaluated on a wrong shape.

Masks on a grid (``rasterize_roi``)
-----------------------------------
Closed planar contours must lie in planes of the grid's slices (constant k); any patient orientation of
the grid is fine because the points are mapped to fractional (i, j, k) indices through the grid.

* In-plane, the contours of one plane combine by the **even-odd rule**: a voxel centre is inside when a
  ray from it crosses the plane's contours an odd number of times. A contour drawn inside another is a
  hole, an island inside a hole is tissue again, and a keyhole contour (one ring that runs out to a hole
  and back along a cut) gives the same result. This is how dicompyler and most planning systems read
  RTSTRUCTs. Voxel centres are tested (the voxel is in when its centre is).
* Through-plane, each contour plane stands for a slab reaching half way to its neighbouring planes (half
  the contour spacing beyond an end plane, or beside a gap of more than 1.5 spacings): a CT slice takes
  the plane whose slab holds its centre. Contours on every CT slice map one to one; contours on every
  other slice fill the slice between.

The in-plane test is a vectorised even-odd ray crossing count (a half-open rule at vertices, so a ray
through a vertex is counted once); the tests check it against matplotlib's ``Path.contains_points``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..geometry.grid import ImageGeometry
from ..geometry.masks import Mask
from ..protocol.roles import StructureInfo, StructureMasks, structure_keys
from .dicom_image import lps_to_ras
from .dicom_scan import read_dataset
from .errors import CorruptDicomError, DicomWarning, RTStructError

#: Contour points farther than this from their plane, measured along the grid's slice normal, make the
#: contour non-planar for this grid (mm).
PLANARITY_TOLERANCE_MM = 0.05
#: Contour planes closer than this are one plane (mm).
PLANE_MERGE_MM = 0.01
#: Consecutive contour points closer than this (in every coordinate) are one point (mm).
POINT_MERGE_MM = 1e-3
#: A contour plane farther than this from the nearest CT slice centre is "between slices" (mm).
OFF_SLICE_MM = 0.05
#: Fix named in every refusal of a contour.
CONTOUR_FIX = "Redraw or repair the contour in the planning system and export the structure set again."


@dataclass
class ContourItem:
    """One contour as stored: (N, 3) LPS points (mm), its geometric type and referenced image UIDs."""

    points_lps: np.ndarray = field(repr=False)
    geometric_type: str = "CLOSED_PLANAR"
    referenced_sop_uids: Tuple[str, ...] = ()

    @property
    def points_ras(self) -> np.ndarray:
        return lps_to_ras(self.points_lps)


@dataclass
class RoiContours:
    """One ROI of a structure set."""

    number: int
    name: str
    color: Tuple[float, float, float]  # 0..1
    interpreted_type: str
    frame_of_reference_uid: str
    contours: List[ContourItem] = field(default_factory=list)
    generation_algorithm: str = ""
    problem: str = ""  # why the ROI was left out of the case (``StructureSet.refused``); "" when usable

    @property
    def label(self) -> str:
        """``'GTV' (ROI number 3)``: how messages name the ROI."""
        return f"'{self.name}' (ROI number {self.number})"

    def closed_planar(self) -> List[ContourItem]:
        return [c for c in self.contours if c.geometric_type == "CLOSED_PLANAR" and len(c.points_lps) >= 3]

    def polygons_ras(self) -> List[np.ndarray]:
        """The closed planar contours as (N, 3) RAS polygons (the form ``dose.contours`` takes)."""
        return [c.points_ras for c in self.closed_planar()]

    def to_contour_structure(self, slice_spacing_mm: Optional[float] = None, end_caps: str = "half-slice"):
        """The ROI as a ``dose.contours.ContourStructure`` for the contour-based DVH engine (even-odd planes)."""
        from ..dose.contours import ContourStructure

        return ContourStructure.from_polygons(
            self.name, self.polygons_ras(), slice_spacing_mm=slice_spacing_mm, end_caps=end_caps
        )


@dataclass
class StructureSet:
    """A read RTSTRUCT. ``dataset`` is the full pydicom dataset (for a verbatim re-export), never printed."""

    path: Optional[Path]
    sop_instance_uid: str
    series_uid: str
    study_uid: str
    label: str
    frame_of_reference_uids: Tuple[str, ...]
    referenced_series_uids: Tuple[str, ...]
    rois: List[RoiContours]
    dataset: object = field(default=None, repr=False)
    refused: List[RoiContours] = field(default_factory=list)  # left out: see each ROI's ``problem``
    messages: List[str] = field(default_factory=list)  # repairs and refusals (also issued as DicomWarning)

    def roi(self, name: str) -> RoiContours:
        """The ROI with this key (see ``roi_keys``) or this name; a name several ROIs carry is a KeyError."""
        by_key = dict(zip(roi_keys(self.rois), self.rois))
        if name in by_key:
            return by_key[name]
        hits = [r for r in self.rois if r.name == name]
        if len(hits) == 1:
            return hits[0]
        if hits:
            raise KeyError(f"{len(hits)} ROIs are named {name} (ROI numbers {', '.join(str(r.number) for r in hits)})")
        raise KeyError(name)

    @property
    def roi_names(self) -> List[str]:
        return [r.name for r in self.rois]

    def roi_frames_of_reference(self) -> Dict[str, str]:
        return {r.name: r.frame_of_reference_uid for r in self.rois}


def _color(value) -> Tuple[float, float, float]:
    try:
        rgb = [float(x) / 255.0 for x in value]
        if len(rgb) == 3:
            return tuple(min(1.0, max(0.0, x)) for x in rgb)
    except (TypeError, ValueError):
        pass
    return (0.5, 0.5, 0.5)


def _in_plane(points: np.ndarray) -> np.ndarray:
    """(N, 2) coordinates of a planar polygon in its plane: the coordinate most along the plane's normal (the
    points' least-spread direction, which a bow-tie's cancelling lobes do not disturb) dropped, which keeps
    which edges cross."""
    p = np.asarray(points, np.float64)
    spread = np.ptp(p, axis=0)
    if np.count_nonzero(spread <= 1e-9) == 1:
        drop = int(np.argmin(spread))  # the usual case: a contour in an axial, sagittal or coronal plane
    else:
        normal = np.linalg.svd(p - p.mean(axis=0), full_matrices=False)[2][-1]
        drop = int(np.argmax(np.abs(normal)))
    return np.delete(p, drop, axis=1)


def crossing_edges(ring: np.ndarray) -> Optional[Tuple[int, int]]:
    """The first pair (i, j) of edges of the closed polygon ``ring`` ((N, 2) points, closed implicitly; edge i
    runs from point i to point i+1) that cross each other, or None. Only proper crossings count: edges sharing
    a point, touching or running along each other (a keyhole's cut) do not.

    Vectorised sweep: edges sorted by their smallest x, each tested against those whose x ranges overlap
    (a few per edge for a drawn contour), then by orientation signs."""
    a = np.asarray(ring, np.float64)
    n = len(a)
    if n < 4:
        return None
    b = np.roll(a, -1, axis=0)
    xmin, xmax = np.minimum(a[:, 0], b[:, 0]), np.maximum(a[:, 0], b[:, 0])
    ymin, ymax = np.minimum(a[:, 1], b[:, 1]), np.maximum(a[:, 1], b[:, 1])
    order = np.argsort(xmin, kind="stable")
    ends = np.searchsorted(xmin[order], xmax[order], side="right")
    counts = np.maximum(ends - np.arange(n) - 1, 0)
    total = int(counts.sum())
    if total == 0:
        return None
    pos = np.repeat(np.arange(n), counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    i, j = order[pos], order[pos + 1 + (np.arange(total) - first)]
    gap = np.abs(i - j)
    keep = (gap != 1) & (gap != n - 1) & (ymin[i] <= ymax[j]) & (ymin[j] <= ymax[i])
    i, j = i[keep], j[keep]
    if i.size == 0:
        return None
    scale = float(np.max(np.ptp(a, axis=0))) or 1.0
    eps = 1e-9 * scale * scale

    def side(p, q, r):
        o = (q[:, 0] - p[:, 0]) * (r[:, 1] - p[:, 1]) - (q[:, 1] - p[:, 1]) * (r[:, 0] - p[:, 0])
        return np.where(o > eps, 1, np.where(o < -eps, -1, 0))

    crossing = (side(a[i], b[i], a[j]) * side(a[i], b[i], b[j]) < 0) & (
        side(a[j], b[j], a[i]) * side(a[j], b[j], b[i]) < 0
    )
    if not crossing.any():
        return None
    m = int(np.argmax(crossing))
    return tuple(sorted((int(i[m]), int(j[m]))))


@dataclass
class ContourCheck:
    """What ``check_contour`` found: the points to use, what was repaired, and why the contour is refused."""

    points: np.ndarray
    repeated_points: int = 0  # consecutive repeats dropped
    closing_point: bool = False  # an explicit closing point (equal to the first) dropped
    problem: str = ""  # "" when usable


def check_contour(points_lps: np.ndarray) -> ContourCheck:
    """Check one closed planar contour: drop consecutive repeats and an explicit closing point (unambiguous
    repairs), refuse fewer than 3 distinct points or crossing edges (see the module doc)."""
    p = np.asarray(points_lps, np.float64).reshape(-1, 3)
    if len(p) == 0:
        return ContourCheck(p, problem="has no points")
    if not np.all(np.isfinite(p)):
        return ContourCheck(p, problem="has coordinates that are not numbers (NaN or infinite)")
    keep = np.ones(len(p), bool)
    keep[1:] = np.any(np.abs(np.diff(p, axis=0)) > POINT_MERGE_MM, axis=1)
    repeated = int(len(p) - keep.sum())
    p = p[keep]
    closing = False
    while len(p) > 1 and np.all(np.abs(p[-1] - p[0]) <= POINT_MERGE_MM):
        p, closing = p[:-1], True
    if len(p) < 3:
        return ContourCheck(
            p,
            repeated,
            closing,
            f"has {len(p)} distinct point{'s' if len(p) != 1 else ''} (a closed contour needs at least 3)",
        )
    crossed = crossing_edges(_in_plane(p))
    if crossed is not None:
        i, j = crossed
        return ContourCheck(
            p,
            repeated,
            closing,
            f"crosses itself (its edge from point {i + 1} to {i + 2} crosses the edge from point {j + 1} to "
            f"{(j + 1) % len(p) + 1}), so what it encloses is not what was drawn",
        )
    return ContourCheck(p, repeated, closing)


def _z_list(zs: List[float]) -> str:
    shown = ", ".join(f"{z:.2f}" for z in zs[:4])
    return shown + (f" and {len(zs) - 4} more" if len(zs) > 4 else "") + " mm"


def _check_roi(roi: RoiContours, where: str) -> List[str]:
    """Repair and check the ROI's closed planar contours in place; sets ``roi.problem`` when the ROI must be
    left out. Returns the messages (repairs, refusal)."""
    messages: List[str] = []
    repeated = closing = 0
    refused: List[Tuple[float, str]] = []
    for c in roi.contours:
        if c.geometric_type != "CLOSED_PLANAR":
            continue
        zs = c.points_lps[:, 2][np.isfinite(c.points_lps[:, 2])] if len(c.points_lps) else []
        z = float(np.mean(zs)) if len(zs) else float("nan")
        check = check_contour(c.points_lps)
        c.points_lps = check.points
        repeated += check.repeated_points
        closing += int(check.closing_point)
        if check.problem:
            refused.append((z, check.problem))
    if repeated or closing:
        parts = []
        if closing:
            parts.append(
                f"{closing} contour{'s' if closing > 1 else ''} repeat{'s' if closing == 1 else ''} the "
                "first point at the end"
            )
        if repeated:
            parts.append(f"{repeated} point{'s repeat' if repeated > 1 else ' repeats'} the point before")
        messages.append(
            f"{where}: ROI {roi.label}: {' and '.join(parts)}; the repeated points were dropped (the contours are "
            "otherwise as stored)."
        )
    if refused:
        first_z, first_problem = refused[0]
        more = ""
        if len(refused) > 1:
            more = f" ({len(refused)} contours are refused, at DICOM z = {_z_list([z for z, _ in refused])})"
        roi.problem = (
            f"{where}: ROI {roi.label} is left out of the case: its closed contour on the slice at DICOM z = "
            f"{first_z:.2f} mm {first_problem}{more}. {CONTOUR_FIX}"
        )
        messages.append(roi.problem)
    return messages


def read_rtstruct(source) -> StructureSet:
    """Read an RTSTRUCT file (path) or pydicom dataset into a StructureSet. A truncated or corrupt file is a
    ``CorruptDicomError`` that names it as the structure set."""
    path = Path(source) if isinstance(source, (str, Path)) else None
    where = str(path) if path is not None else "RTSTRUCT"
    try:
        ds = read_dataset(source) if path is not None else source
    except CorruptDicomError as exc:
        detail = str(exc).replace(f"{path}: ", "", 1)
        raise CorruptDicomError(
            f"The structure set (RTSTRUCT) {path} is truncated or corrupt, so no structure can be read from it: "
            f"{detail}"
        ) from exc
    lacking = [name for name in ("StructureSetROISequence", "ROIContourSequence") if name not in ds]
    if path is not None and lacking:
        raise CorruptDicomError(
            f"The structure set (RTSTRUCT) {path} lacks {' and '.join(lacking)}: the file is truncated or "
            "incomplete. Re-export the structure set from the planning system."
        )

    frames, series = [], []
    for fr in getattr(ds, "ReferencedFrameOfReferenceSequence", []) or []:
        uid = str(getattr(fr, "FrameOfReferenceUID", "") or "")
        if uid:
            frames.append(uid)
        for st in getattr(fr, "RTReferencedStudySequence", []) or []:
            for se in getattr(st, "RTReferencedSeriesSequence", []) or []:
                s = str(getattr(se, "SeriesInstanceUID", "") or "")
                if s:
                    series.append(s)

    rois: Dict[int, RoiContours] = {}
    for item in getattr(ds, "StructureSetROISequence", []) or []:
        try:
            number = int(item.ROINumber)
        except (AttributeError, TypeError, ValueError):
            raise RTStructError(
                f"{where}: a StructureSetROISequence item has no valid ROINumber. Re-export it."
            ) from None
        if number in rois:
            raise RTStructError(f"{where}: ROI number {number} is used twice. Re-export the structure set.")
        rois[number] = RoiContours(
            number=number,
            name=str(getattr(item, "ROIName", "") or f"ROI_{number}").strip(),
            color=(0.5, 0.5, 0.5),
            interpreted_type="",
            frame_of_reference_uid=str(getattr(item, "ReferencedFrameOfReferenceUID", "") or ""),
            generation_algorithm=str(getattr(item, "ROIGenerationAlgorithm", "") or ""),
        )
    for item in getattr(ds, "ROIContourSequence", []) or []:
        number = int(getattr(item, "ReferencedROINumber", -1))
        roi = rois.get(number)
        if roi is None:
            raise RTStructError(
                f"{where}: contours for ROI number {number}, which the StructureSetROISequence does not declare. "
                "Re-export the structure set."
            )
        if "ROIDisplayColor" in item:
            roi.color = _color(item.ROIDisplayColor)
        for n, contour in enumerate(getattr(item, "ContourSequence", []) or []):
            data = np.asarray([float(x) for x in np.atleast_1d(getattr(contour, "ContourData", []))], np.float64)
            if data.size % 3:
                raise RTStructError(
                    f"{where}: ROI '{roi.name}' contour {n + 1} has {data.size} coordinates, not a multiple of 3. "
                    "Re-export the structure set."
                )
            declared = getattr(contour, "NumberOfContourPoints", None)
            if declared is not None and int(declared) != data.size // 3:
                raise RTStructError(
                    f"{where}: ROI '{roi.name}' contour {n + 1} declares {int(declared)} points but holds "
                    f"{data.size // 3}. Re-export the structure set."
                )
            refs = tuple(
                str(getattr(ci, "ReferencedSOPInstanceUID", ""))
                for ci in (getattr(contour, "ContourImageSequence", []) or [])
            )
            roi.contours.append(
                ContourItem(
                    data.reshape(-1, 3),
                    str(getattr(contour, "ContourGeometricType", "CLOSED_PLANAR") or "CLOSED_PLANAR").upper(),
                    refs,
                )
            )
    for item in getattr(ds, "RTROIObservationsSequence", []) or []:
        roi = rois.get(int(getattr(item, "ReferencedROINumber", -1)))
        if roi is not None:
            roi.interpreted_type = str(getattr(item, "RTROIInterpretedType", "") or "")
    top_frame = str(getattr(ds, "FrameOfReferenceUID", "") or "")
    messages: List[str] = []
    for roi in rois.values():
        if not roi.frame_of_reference_uid:
            roi.frame_of_reference_uid = frames[0] if len(frames) == 1 else top_frame
        messages.extend(_check_roi(roi, where))
    for m in messages:
        warnings.warn(m, DicomWarning, stacklevel=2)
    return StructureSet(
        path=path,
        sop_instance_uid=str(getattr(ds, "SOPInstanceUID", "") or ""),
        series_uid=str(getattr(ds, "SeriesInstanceUID", "") or ""),
        study_uid=str(getattr(ds, "StudyInstanceUID", "") or ""),
        label=str(getattr(ds, "StructureSetLabel", "") or ""),
        frame_of_reference_uids=tuple(dict.fromkeys(frames + ([top_frame] if top_frame else []))),
        referenced_series_uids=tuple(dict.fromkeys(series)),
        rois=[rois[k] for k in sorted(rois) if not rois[k].problem],
        dataset=ds,
        refused=[rois[k] for k in sorted(rois) if rois[k].problem],
        messages=messages,
    )


def even_odd_fill(rings_ij: List[np.ndarray], shape_ji: Tuple[int, int]) -> np.ndarray:
    """Boolean [j, i] image: pixel centres (i, j) inside the rings by the even-odd rule.

    ``rings_ij`` are (N, 2) arrays of fractional (i, j) index coordinates (closed implicitly).
    """
    nj, ni = shape_ji
    js, xs = [], []
    for ring in rings_ij:
        p = np.asarray(ring, dtype=np.float64)
        if len(p) >= 2 and np.allclose(p[0], p[-1]):
            p = p[:-1]
        if len(p) < 3:
            continue
        q = np.roll(p, -1, axis=0)
        y0, y1 = p[:, 1], q[:, 1]
        lo, hi = np.minimum(y0, y1), np.maximum(y0, y1)
        # rows j with lo <= j < hi (half-open: a ray through a vertex crosses once; horizontal edges never)
        j_first = np.maximum(np.ceil(lo), 0).astype(np.int64)
        j_stop = np.minimum(np.ceil(hi), nj).astype(np.int64)
        counts = np.maximum(j_stop - j_first, 0)
        if counts.sum() == 0:
            continue
        edge = np.repeat(np.arange(len(p)), counts)
        start = np.repeat(np.cumsum(counts) - counts, counts)
        j = j_first[edge] + (np.arange(counts.sum()) - start)
        x0, dx = p[edge, 0], q[edge, 0] - p[edge, 0]
        t = (j - y0[edge]) / (y1[edge] - y0[edge])
        js.append(j)
        xs.append(x0 + t * dx)
    out = np.zeros((nj, ni), dtype=bool)
    if not js:
        return out
    j = np.concatenate(js)
    x = np.concatenate(xs)
    # a crossing at x flips every pixel centre i >= x
    col = np.clip(np.ceil(x), 0, ni).astype(np.int64)
    flips = np.zeros((nj, ni + 1), dtype=np.int64)
    np.add.at(flips, (j, col), 1)
    return (np.cumsum(flips[:, :ni], axis=1) % 2).astype(bool)


def _planes(roi: RoiContours, geometry: ImageGeometry, where: str):
    """Group the ROI's closed planar contours by plane: [(k position, [rings in (i, j)])] sorted by k."""
    sk = geometry.spacing[2]
    items = []
    for n, c in enumerate(roi.closed_planar()):
        ijk = geometry.ras_to_ijk_points(c.points_ras)
        spread = (ijk[:, 2].max() - ijk[:, 2].min()) * sk
        if spread > PLANARITY_TOLERANCE_MM:
            raise RTStructError(
                f"{where}: ROI {roi.label} contour {n + 1} (DICOM z = {np.mean(c.points_lps[:, 2]):.2f} mm) is not "
                f"in a slice plane of the image grid (its points span {spread:.2f} mm across the slices). Contours "
                "must be drawn on the planning CT's slices; re-export the structure set on the planning CT."
            )
        items.append((float(ijk[:, 2].mean()), ijk[:, :2], float(np.mean(c.points_lps[:, 2]))))
    items.sort(key=lambda t: t[0])
    off = sorted({round(z, 2) for k, _, z in items if abs(k - round(k)) * sk > OFF_SLICE_MM})
    if off:
        warnings.warn(
            f"{where}: ROI {roi.label} has contours between the slices of the image grid (at DICOM z = "
            f"{_z_list(off)}); each is used for the slices its slab holds (half way to the neighbouring contours). "
            "Check that the structure set was drawn on this planning CT.",
            DicomWarning,
            stacklevel=3,
        )
    planes: List[Tuple[float, List[np.ndarray]]] = []
    merge = PLANE_MERGE_MM / sk
    for k, ring, _ in items:
        if planes and k - planes[-1][0] <= merge:
            planes[-1][1].append(ring)
        else:
            planes.append((k, [ring]))
    return planes


def rasterize_roi(
    roi: RoiContours, geometry: ImageGeometry, where: str = "RTSTRUCT", name: Optional[str] = None
) -> Mask:
    """The ROI's closed planar contours as a Mask on ``geometry`` (see the module doc for the rules).

    Warns (``DicomWarning``) when contours reach beyond the grid, which clips them.
    """
    nk, nj, ni = geometry.shape
    out = np.zeros(geometry.shape, dtype=bool)
    planes = _planes(roi, geometry, where)
    if not planes:
        return Mask(out, geometry, name or roi.name)
    ks = np.array([p[0] for p in planes])
    spacing = float(np.median(np.diff(ks))) if len(ks) > 1 else 1.0
    clipped = False
    eps = 1e-6
    for m, (k, rings) in enumerate(planes):
        below = (k - ks[m - 1]) / 2 if m > 0 and k - ks[m - 1] <= 1.5 * spacing else spacing / 2
        above = (ks[m + 1] - k) / 2 if m + 1 < len(ks) and ks[m + 1] - k <= 1.5 * spacing else spacing / 2
        k_lo = int(np.ceil(k - below - eps))
        k_hi = int(np.ceil(k + above - eps))  # exclusive
        if k_lo < 0 or k_hi > nk:
            clipped = True
        k_lo, k_hi = max(k_lo, 0), min(k_hi, nk)
        if k_hi <= k_lo:
            continue
        for ring in rings:
            if (
                ring[:, 0].min() < -0.5
                or ring[:, 0].max() > ni - 0.5
                or ring[:, 1].min() < -0.5
                or (ring[:, 1].max() > nj - 0.5)
            ):
                clipped = True
        plane = even_odd_fill(rings, (nj, ni))
        out[k_lo:k_hi] |= plane[None, :, :]
    if clipped:
        warnings.warn(
            f"{where}: ROI '{roi.name}' reaches beyond the image grid ({geometry.describe()}); the part outside "
            "is left out of its mask.",
            DicomWarning,
            stacklevel=2,
        )
    return Mask(out, geometry, name or roi.name)


def roi_keys(rois: List[RoiContours]) -> List[str]:
    """Each ROI's key, in ROI order: its name, or ``Name [ROI n]`` when another ROI's name is the same after
    trimming and case-folding (``protocol.roles.structure_keys``). Two ROIs are never one structure."""
    return structure_keys([(r.name, r.number, None) for r in rois])


#: The former name of ``roi_keys``.
unique_roi_names = roi_keys


def roi_infos(rois: List[RoiContours]) -> Dict[str, StructureInfo]:
    """key -> StructureInfo (name as drawn, ROI number) of the ROIs."""
    return {key: StructureInfo(key, r.name, roi_number=r.number) for key, r in zip(roi_keys(rois), rois)}


def structure_set_masks(ss: StructureSet, geometry: ImageGeometry) -> StructureMasks:
    """Every usable ROI as a Mask on ``geometry``, keyed by ``roi_keys`` (with each key's ROI number in
    ``.info``). ROIs with no closed planar contour (markers, empty ROIs) give empty masks; refused ROIs
    (``ss.refused``) are left out."""
    where = str(ss.path) if ss.path else "RTSTRUCT"
    keys = roi_keys(ss.rois)
    return StructureMasks(
        {key: rasterize_roi(roi, geometry, where, key) for key, roi in zip(keys, ss.rois)}, roi_infos(ss.rois)
    )
