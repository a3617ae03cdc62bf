"""Real DICOM-RT data for the tests: dicompyler-core 0.5.6's example breast case, and a brute-force DVH
reference computed here, independently of the library.

The data
--------
dicompyler-core (BSD licence) ships a case exported by a Varian planning system in its source distribution
(``tests/testdata/example_data``): one CT slice of the 98 its structure set references (512 x 512 at
1.07 mm, 3 mm slices), an RTSTRUCT with 10 ROIs (Areola has no contour), an RTDOSE (2.5 x 2.5 x 3 mm,
98 frames, summation PLAN) and an RTPLAN (14 Gy in 7 fractions to a SITE; a COORDINATES calculation point
of 11.31 Gy). ``breast_case()`` downloads the sdist from the package index with pip at test time (nothing
is committed), checks its sha256, and extracts those four files into ``~/.cache/sibspine-sbrt/real-data``
(``SIBSPINE_REAL_DATA`` overrides), where later runs find them. When the index cannot be reached it
raises: the tests fail loudly rather than skip.

The reference (``reference_dvh``)
---------------------------------
Read from the files with pydicom and plain numpy, following the conventions the library documents:

* through-plane (``dose/contours.py``): each contour plane is a slab reaching half way to its neighbouring
  planes, and half the ROI's median plane spacing s beyond an end plane or beside a gap of more than
  1.5 s (half-slice end caps); each slab is sampled on n >= 10 sub-planes per s (sub-slab midpoints);
* in-plane: a lattice of square cells of side ``step`` (0.1 mm; coarser for the large ROIs, see
  ``lattice_step_mm``), a cell counted when its centre is inside by the even-odd rule (scanlines through
  the cell centres, half-open at vertices), with the volume step^2 x slab / n;
* dose (``dose/grid.py``): trilinear between the RTDOSE voxel centres, the edge value across the outer
  half voxel; a point outside the grid's voxel cubes has no dose (the metrics are over the part inside,
  ``inside_cc``, as the library's are);
* metrics from a histogram of 0.001 Gy bins (each Dx is interpolated inside its bin: within 0.001 Gy of
  the lattice's own value): Dx% of the part inside, Dxcc the least dose of the hottest x cc; Dmean exact
  over the lattice.

The lattice's error: its boundary cells are in or out whole (an area error of order perimeter x step, with
random signs that mostly cancel) and the sub-planes sample each slab's dose at their midpoints. For the
large ROIs the in-plane step is coarsened (``lattice_step_mm``: at most about 32 million cells per ROI), to
0.4 mm for BODY (15 dm3) and 0.2 mm for Lt Lung (2 dm3), which keeps the whole reference near 15 s.
Measured on this case, against BODY at 0.2 mm and Lt Lung at 0.1 mm, that moves every metric by at most
0.001 Gy (at 0.3 mm, Lt Lung's D0.03cc moved by 0.01 Gy; at 0.6 mm, Breast's D50% by 0.004 Gy), far
inside the tests' tolerance of max(0.5%, 0.05 Gy).

The exact extremes (``exact_max``/``exact_min``): the trilinear dose is linear along z between the dose
frames, so over a slab its extremes lie on the slab's end planes or on a dose frame inside it. In such a
plane the dose is bilinear in each cell, which has no interior maximum or minimum: the extremes over the
region lie at dose-grid nodes inside it or on its contour edges, where, between the grid lines an edge
crosses, the dose is a quadratic in the edge parameter (its ends and its vertex are evaluated). Where a
contour leaves the dose grid, the grid's outer faces are not searched (only BODY reaches them, in a dose
near 0 Gy).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

SDIST = "dicompyler-core-0.5.6.tar.gz"
SDIST_SHA256 = "0e3c05920a8fa3f1c0ff05a5c21dab3ff3f735e00012b69b38926b219d07faee"
MEMBER_DIR = "dicompyler-core-0.5.6/tests/testdata/example_data/"
FILES = ("ct.0.dcm", "rtss.dcm", "rtdose.dcm", "rtplan.dcm")


def cache_dir() -> Path:
    return Path(os.environ.get("SIBSPINE_REAL_DATA", Path.home() / ".cache" / "sibspine-sbrt" / "real-data"))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def breast_case() -> Path:
    """The folder holding the example case's four files (downloaded and extracted on first use)."""
    cache = cache_dir()
    folder = cache / "dicompyler-core-0.5.6-example_data"
    if all((folder / name).is_file() for name in FILES):
        return folder
    cache.mkdir(parents=True, exist_ok=True)
    archive = cache / SDIST
    if not archive.is_file() or _sha256(archive) != SDIST_SHA256:
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            command = [
                sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                "dicompyler-core==0.5.6", "-d", tmp,
            ]  # fmt: skip
            proc = subprocess.run(command, capture_output=True, text=True, timeout=600)
            got = Path(tmp) / SDIST
            if proc.returncode != 0 or not got.is_file():
                raise RuntimeError(
                    "Could not download dicompyler-core 0.5.6's source distribution (the real-data tests need it; "
                    f"they do not skip): {' '.join(command)} exited {proc.returncode}.\n{proc.stdout}\n{proc.stderr}"
                )
            shutil.move(str(got), str(archive))
    digest = _sha256(archive)
    if digest != SDIST_SHA256:
        raise RuntimeError(f"{archive}: sha256 {digest}, expected {SDIST_SHA256}; delete it and run again.")
    tmp = Path(tempfile.mkdtemp(dir=cache))
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for name in FILES:
                source = tar.extractfile(tar.getmember(MEMBER_DIR + name))
                assert source is not None
                (tmp / name).write_bytes(source.read())
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


# -- the dose, read with pydicom ------------------------------------------------------------------------------


@dataclass
class Dose:
    """RTDOSE values (Gy, [k, j, i]) on an axial grid: x = x0 + i dx, y = y0 + j dy, z = z0 + k dz (LPS mm)."""

    values: np.ndarray
    x0: float
    y0: float
    z0: float
    dx: float
    dy: float
    dz: float
    frame_of_reference_uid: str = ""

    @classmethod
    def read(cls, path) -> Dose:
        import pydicom

        ds = pydicom.dcmread(str(path))
        assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0], "an axial HFS dose grid"
        values = ds.pixel_array.astype(np.float64) * float(ds.DoseGridScaling)
        offsets = np.array([float(v) for v in ds.GridFrameOffsetVector])
        steps = np.diff(offsets)
        assert np.allclose(steps, steps[0]), "uniform frame spacing"
        x0, y0, z0 = (float(v) for v in ds.ImagePositionPatient)
        dy, dx = (float(v) for v in ds.PixelSpacing)  # row spacing (along y), column spacing (along x)
        return cls(values, x0, y0, z0 + offsets[0], dx, dy, float(steps[0]), str(ds.FrameOfReferenceUID))

    @property
    def shape(self) -> Tuple[int, int, int]:
        return self.values.shape

    def _axis(self, value, origin, step, n):
        """(lower node index, fraction, inside) along one axis: the edge value across the outer half voxel."""
        f = (np.asarray(value, dtype=np.float64) - origin) / step
        inside = (f >= -0.5) & (f <= n - 0.5)
        f = np.clip(f, 0.0, n - 1.0)
        base = np.minimum(np.floor(f).astype(np.int64), n - 2)
        return base, f - base, inside

    def planar(self, x, y, frames) -> np.ndarray:
        """Bilinear dose at the points (x, y) on each frame of ``frames``: (len(frames), n)."""
        nk, nj, ni = self.shape
        i, u, _ = self._axis(x, self.x0, self.dx, ni)
        j, v, _ = self._axis(y, self.y0, self.dy, nj)
        out = np.empty((len(frames), len(i)))
        for n, k in enumerate(frames):
            a = self.values[k]
            out[n] = (a[j, i] * (1 - u) + a[j, i + 1] * u) * (1 - v) + (a[j + 1, i] * (1 - u) + a[j + 1, i + 1] * u) * v
        return out

    def inside_xy(self, x, y) -> np.ndarray:
        nk, nj, ni = self.shape
        return self._axis(x, self.x0, self.dx, ni)[2] & self._axis(y, self.y0, self.dy, nj)[2]

    def z_weights(self, z):
        """For heights z: (lower frame, fraction towards the next, inside the grid)."""
        return self._axis(z, self.z0, self.dz, self.shape[0])

    def at_heights(self, x, y, zs) -> Tuple[np.ndarray, np.ndarray]:
        """Trilinear dose (len(zs), n) at the points (x, y) on each height of ``zs``, and which heights are
        inside the grid along z."""
        k, t, inside = self.z_weights(zs)
        frames = np.unique(np.concatenate([k, k + 1]))
        planes = self.planar(x, y, frames)
        lo = planes[np.searchsorted(frames, k)]
        hi = planes[np.searchsorted(frames, k + 1)]
        return lo * (1 - t)[:, None] + hi * t[:, None], inside


# -- the structures, read with pydicom ------------------------------------------------------------------------


@dataclass
class Plane:
    z: float
    rings: List[np.ndarray]  # (N, 2) x, y (LPS mm), closed implicitly
    below: float
    above: float


@dataclass
class Roi:
    number: int
    name: str
    planes: List[Plane] = field(default_factory=list)
    spacing: float = 0.0


def read_rois(path) -> Dict[str, Roi]:
    """Every ROI with closed planar contours, with its slabs (half-slice end caps), by ROI name."""
    import pydicom

    ds = pydicom.dcmread(str(path))
    names = {int(r.ROINumber): str(r.ROIName) for r in ds.StructureSetROISequence}
    out = {}
    for item in ds.ROIContourSequence:
        number = int(item.ReferencedROINumber)
        by_z: Dict[float, List[np.ndarray]] = {}
        for c in getattr(item, "ContourSequence", None) or []:
            if str(c.ContourGeometricType).upper() != "CLOSED_PLANAR":
                continue
            p = np.array([float(v) for v in c.ContourData]).reshape(-1, 3)
            if len(p) < 3:
                continue
            assert np.ptp(p[:, 2]) < 1e-3, "axial contours"
            by_z.setdefault(round(float(p[0, 2]), 2), []).append(p[:, :2])
        if not by_z:
            continue
        zs = np.array(sorted(by_z))
        gaps = np.diff(zs)
        s = float(np.median(gaps))
        planes = []
        for n, z in enumerate(zs):
            below = gaps[n - 1] / 2 if n > 0 and gaps[n - 1] <= 1.5 * s else s / 2
            above = gaps[n] / 2 if n < len(gaps) and gaps[n] <= 1.5 * s else s / 2
            planes.append(Plane(float(z), by_z[z], float(below), float(above)))
        out[names[number]] = Roi(number, names[number], planes, s)
    return out


def _crossings(rings: List[np.ndarray], y_first: float, step: float, count: int):
    """Even-odd scanlines at y = y_first + r step (r < count): (row, x of entry, x of exit) of every
    inside interval. Half-open at vertices: an edge from y0 to y1 crosses the rows with min <= y < max."""
    rows, xs = [], []
    for ring in rings:
        p = np.asarray(ring, dtype=np.float64)
        q = np.roll(p, -1, axis=0)
        lo, hi = np.minimum(p[:, 1], q[:, 1]), np.maximum(p[:, 1], q[:, 1])
        r0 = np.clip(np.ceil((lo - y_first) / step), 0, count).astype(np.int64)
        r1 = np.clip(np.ceil((hi - y_first) / step), 0, count).astype(np.int64)
        n = np.maximum(r1 - r0, 0)
        edge = np.repeat(np.arange(len(p)), n)
        r = r0[edge] + np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
        y = y_first + r * step
        t = (y - p[edge, 1]) / (q[edge, 1] - p[edge, 1])
        rows.append(r)
        xs.append(p[edge, 0] + t * (q[edge, 0] - p[edge, 0]))
    row, x = np.concatenate(rows), np.concatenate(xs)
    order = np.lexsort((x, row))
    row, x = row[order], x[order]
    assert len(row) % 2 == 0 and np.all(row[0::2] == row[1::2]), "closed rings cross each row an even number of times"
    return row[0::2], x[0::2], x[1::2]


def lattice(rings: List[np.ndarray], step: float) -> Tuple[np.ndarray, np.ndarray]:
    """Centres (x, y) of the lattice cells (side ``step``, centres at (m + 1/2) step) inside the rings."""
    allp = np.concatenate(rings)
    y_first_index = int(np.floor(allp[:, 1].min() / step))
    count = int(np.ceil(allp[:, 1].max() / step)) - y_first_index + 1
    y_first = (y_first_index + 0.5) * step
    row, a, b = _crossings(rings, y_first, step, count)
    c0 = np.ceil(a / step - 0.5).astype(np.int64)  # first centre >= a
    c1 = np.ceil(b / step - 0.5).astype(np.int64)  # first centre >= b (exclusive)
    n = np.maximum(c1 - c0, 0)
    owner = np.repeat(np.arange(len(n)), n)
    col = c0[owner] + np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    return (col + 0.5) * step, y_first + row[owner] * step


def _nodes_inside(rings: List[np.ndarray], dose: Dose) -> Tuple[np.ndarray, np.ndarray]:
    """Dose-grid nodes (x, y) inside the rings (even-odd)."""
    nk, nj, ni = dose.shape
    row, a, b = _crossings(rings, dose.y0, dose.dy, nj)
    c0 = np.clip(np.ceil((a - dose.x0) / dose.dx), 0, ni).astype(np.int64)
    c1 = np.clip(np.ceil((b - dose.x0) / dose.dx), 0, ni).astype(np.int64)
    n = np.maximum(c1 - c0, 0)
    owner = np.repeat(np.arange(len(n)), n)
    col = c0[owner] + np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    return dose.x0 + col * dose.dx, dose.y0 + row[owner] * dose.dy


def _edge_candidates(rings: List[np.ndarray], dose: Dose) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points on the contour edges where the in-plane dose may be extreme: each edge is cut where it crosses
    a grid line (nodes and outer faces); inside each piece the bilinear dose is a quadratic in the edge
    parameter. Returns (x, y) of the pieces' ends and midpoints, and the piece of each (for the vertex)."""
    nk, nj, ni = dose.shape
    lines_x = np.concatenate(
        [[dose.x0 - dose.dx / 2], dose.x0 + dose.dx * np.arange(ni), [dose.x0 + dose.dx * (ni - 0.5)]]
    )
    lines_y = np.concatenate(
        [[dose.y0 - dose.dy / 2], dose.y0 + dose.dy * np.arange(nj), [dose.y0 + dose.dy * (nj - 0.5)]]
    )
    ts = []
    p = np.concatenate([np.asarray(r, dtype=np.float64) for r in rings])
    q = np.concatenate([np.roll(np.asarray(r, dtype=np.float64), -1, axis=0) for r in rings])
    for axis, lines in ((0, lines_x), (1, lines_y)):
        a, b = p[:, axis], q[:, axis]
        lo = np.searchsorted(lines, np.minimum(a, b), side="right")
        hi = np.searchsorted(lines, np.maximum(a, b), side="left")
        n = np.maximum(hi - lo, 0)
        edge = np.repeat(np.arange(len(p)), n)
        line = lines[lo[edge] + np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)]
        ts.append((edge, (line - a[edge]) / (b[edge] - a[edge])))
    edge = np.concatenate([np.arange(len(p)), np.arange(len(p))] + [e for e, _ in ts])
    t = np.concatenate([np.zeros(len(p)), np.ones(len(p))] + [t for _, t in ts])
    order = np.lexsort((t, edge))
    edge, t = edge[order], t[order]
    same = edge[1:] == edge[:-1]
    e, t0, t1 = edge[1:][same], t[:-1][same], t[1:][same]
    tm = 0.5 * (t0 + t1)
    pts = [p[e] + tt[:, None] * (q[e] - p[e]) for tt in (t0, tm, t1)]
    return pts[0], pts[1], pts[2]


def _extremes_in_plane(rings: List[np.ndarray], dose: Dose, zs: np.ndarray) -> Tuple[float, float]:
    """Max and min of the trilinear dose over the even-odd region of ``rings`` at each height of ``zs``
    (only where inside the grid)."""
    a, m, b = _edge_candidates(rings, dose)
    nx, ny = _nodes_inside(rings, dose)
    hi, lo = -np.inf, np.inf
    for pts in ((nx, ny),):
        keep = dose.inside_xy(*pts)
        if keep.any():
            vals, inside = dose.at_heights(pts[0][keep], pts[1][keep], zs)
            if inside.any():
                hi, lo = max(hi, float(vals[inside].max())), min(lo, float(vals[inside].min()))
    keep = dose.inside_xy(m[:, 0], m[:, 1])  # pieces are wholly inside or outside the grid
    if keep.any():
        fa, inside = dose.at_heights(a[keep, 0], a[keep, 1], zs)
        fm, _ = dose.at_heights(m[keep, 0], m[keep, 1], zs)
        fb, _ = dose.at_heights(b[keep, 0], b[keep, 1], zs)
        fa, fm, fb = fa[inside], fm[inside], fb[inside]
        if fa.size:
            qa = 2 * fb + 2 * fa - 4 * fm  # f(s) = qa s^2 + qb s + fa on s in [0, 1]
            qb = 4 * fm - 3 * fa - fb
            with np.errstate(divide="ignore", invalid="ignore"):
                s = -qb / (2 * qa)
                vertex = np.where((qa != 0) & (s > 0) & (s < 1), fa + qb * s + qa * s * s, fa)
            hi = max(hi, float(np.max([fa.max(), fb.max(), vertex.max()])))
            lo = min(lo, float(np.min([fa.min(), fb.min(), vertex.min()])))
    return hi, lo


# -- the reference ----------------------------------------------------------------------------------------------

#: Histogram bin (Gy) of the reference's DVH.
BIN_GY = 0.001
#: The in-plane lattice has at most about this many cells per ROI (``lattice_step_mm``).
MAX_CELLS = 32_000_000


@dataclass
class Reference:
    name: str
    step_mm: float  # in-plane lattice step
    sub_planes: int  # per plane spacing
    volume_cc: float  # the whole ROI on the lattice (slab convention)
    inside_cc: float  # the part inside the dose grid
    metrics: Dict[str, float]  # D2%, D50%, D98%, D0.03cc, Dmean over the part inside
    lattice_max: float
    lattice_min: float
    exact_max: float
    exact_min: float


def lattice_step_mm(roi: Roi) -> float:
    """0.1 mm, or coarser (0.1 mm multiples) when the ROI's planes would hold more than MAX_CELLS cells."""
    area = 0.0
    for plane in roi.planes:
        for ring in plane.rings:
            x, y = ring[:, 0], ring[:, 1]
            area += 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))
    return max(0.1, round(float(np.ceil(np.sqrt(area / MAX_CELLS) / 0.1)) * 0.1, 1))


def reference_dvh(roi: Roi, dose: Dose, step_mm: Optional[float] = None, sub_per_spacing: int = 10) -> Reference:
    """The brute-force DVH metrics and exact extremes of ``roi`` in ``dose`` (module docstring)."""
    step = float(step_mm or lattice_step_mm(roi))
    top = float(dose.values.max())
    hist = np.zeros(int(np.ceil(top / BIN_GY)) + 2)
    total = inside_total = dose_sum = 0.0
    lat_max, lat_min = -np.inf, np.inf
    ex_max, ex_min = -np.inf, np.inf
    for plane in roi.planes:
        thickness = plane.below + plane.above
        n = max(sub_per_spacing, int(np.ceil(sub_per_spacing * thickness / roi.spacing - 1e-9)))
        zs = plane.z - plane.below + (np.arange(n) + 0.5) * thickness / n
        x, y = lattice(plane.rings, step)
        cell = step * step * thickness / n / 1000.0  # cc
        total += cell * len(x) * n
        keep = dose.inside_xy(x, y)
        if keep.any():
            values, inside = dose.at_heights(x[keep], y[keep], zs)
            values = values[inside]
            if values.size:
                inside_total += cell * values.size
                dose_sum += cell * float(values.sum())
                hist += cell * np.bincount((values / BIN_GY).astype(np.int64).ravel(), minlength=len(hist))
                lat_max, lat_min = max(lat_max, float(values.max())), min(lat_min, float(values.min()))
        # exact extremes: the slab's end planes and the dose frames inside it
        z_lo, z_hi = plane.z - plane.below, plane.z + plane.above
        frames = dose.z0 + dose.dz * np.arange(dose.shape[0])
        levels = np.concatenate([[z_lo, z_hi], frames[(frames > z_lo) & (frames < z_hi)]])
        levels = np.clip(levels, dose.z0 - dose.dz / 2, dose.z0 + dose.dz * (dose.shape[0] - 0.5))
        hi, lo = _extremes_in_plane(plane.rings, dose, np.unique(levels))
        ex_max, ex_min = max(ex_max, hi), min(ex_min, lo)
    above = np.cumsum(hist[::-1])[::-1]  # above[b]: volume in bins >= b

    def dose_to(cc: float) -> float:
        b = int(np.nonzero(above >= cc)[0][-1])
        rest = above[b + 1] if b + 1 < len(above) else 0.0
        return float((b + 1 - (cc - rest) / hist[b]) * BIN_GY)

    metrics = {
        "D2%": dose_to(0.02 * inside_total),
        "D50%": dose_to(0.50 * inside_total),
        "D98%": dose_to(0.98 * inside_total),
        "D0.03cc": dose_to(0.03),
        "Dmean": dose_sum / inside_total,
    }
    return Reference(roi.name, step, sub_per_spacing, total, inside_total, metrics, lat_max, lat_min, ex_max, ex_min)
