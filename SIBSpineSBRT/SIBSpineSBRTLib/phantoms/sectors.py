"""Vertebral sectors and the GTV -> CTV rules of the spine SBRT consensus guidelines.

Mobile spine (Cox et al., IJROBP 2012, ISRC; sector numbering as in the Brainlab Elements implementation):

====== =========================================
sector anatomy
====== =========================================
1      vertebral body
2      left pedicle (patient left)
3      left transverse process and lamina
4      spinous process
5      right transverse process and lamina
6      right pedicle
====== =========================================

Voxels are classified in a local frame built from the canal (the method suggested in the project's
notes): the superior-inferior axis follows the canal, the antero-posterior axis runs from the canal's
centroid to the vertebra's centroid. Bone anterior to the canal's anterior wall is the body (1); bone
lateral to the canal between its anterior and posterior walls is a pedicle (2 or 6); behind the canal's
posterior wall, bone within ``SPINOUS_HALF_WIDTH`` (0.35) of the canal's half-width of the midline (at
least 3 mm) is the spinous process (4) and bone further out the lamina and transverse process of its
side (3 or 5). (The notes suggested the full canal half-width for the spinous process; that puts most of
the laminae, which span the canal, into sector 4.) Known limits of this geometric split: the roots of
cervical transverse processes, which start at the body, fall into sectors 1-2/6, and the articular
pillars lateral to the canal into the pedicle sectors.

GTV -> CTV (``isrc_ctv_sectors``): a sector is involved when the GTV intersects it. Then

* GTV in the body only: the whole body {1}; lateralised (>= 80 % of the GTV on one side of the midline)
  -> {1, ipsilateral pedicle}; diffuse (the GTV spans >= 60 % of the body's width with >= 20 % of it on
  each side) -> {1, 2, 6};
* body and one side's pedicle or posterolateral sector -> {1, pedicle, transverse process/lamina} of that
  side;
* body and both sides -> circumferential {1, ..., 6} (as Brainlab implements it; Cox's text asks for
  bilateral pedicles/transverse processes and laminae);
* without the body: a pedicle -> {pedicle, its transverse process/lamina}; a lamina/transverse process
  -> {its pedicle, itself, 4}; the spinous process -> {3, 4, 5}; several involved sectors take the union.

The CTV is the union of the included sectors' bone and the GTV (no epidural expansion without epidural
disease).

Sacrum (Dunne et al., Radiother Oncol 2020): "the involved sector plus the adjacent uninvolved sector".
The sacral sector map of that paper is not available to us; this module uses, per involved sacral
segment, four sectors -- 1 body, 2 left ala (lateral mass), 3 right ala, 4 posterior elements -- with
adjacency body-ala, ala-posterior (a ring), and includes the involved sectors and their neighbours.
This reading is ours and must be checked against the paper's figure before clinical use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, FrozenSet, Iterable, Optional, Set, Tuple

import numpy as np

from ..geometry.grid import ImageGeometry

ISRC_NAMES = {
    1: "vertebral body",
    2: "left pedicle",
    3: "left transverse process and lamina",
    4: "spinous process",
    5: "right transverse process and lamina",
    6: "right pedicle",
}
#: Half-width of the spinous-process sector as a fraction of the canal's half-width (at least 3 mm).
SPINOUS_HALF_WIDTH = 0.35
SACRAL_NAMES = {1: "sacral body", 2: "left ala", 3: "right ala", 4: "posterior elements"}
_SACRAL_ADJACENT = {1: {2, 3}, 2: {1, 4}, 3: {1, 4}, 4: {2, 3}}


@dataclass(frozen=True)
class LocalFrame:
    """Origin (RAS mm, the canal centroid) and unit axes: u to the patient's right, v anterior, w superior."""

    origin: np.ndarray
    u: np.ndarray
    v: np.ndarray
    w: np.ndarray

    def coords(self, ras: np.ndarray) -> np.ndarray:
        d = np.asarray(ras, float) - self.origin
        return np.stack([d @ self.u, d @ self.v, d @ self.w], axis=-1)


@dataclass
class SectorResult:
    """Sector label per bone voxel (0 outside the bone), the frame and the canal's extent in it."""

    labels: np.ndarray  # int8 on the input grid
    frame: LocalFrame
    canal_half_width: float
    canal_anterior_v: float
    canal_posterior_v: float
    names: Dict[int, str] = field(default_factory=dict)


def _points(mask: np.ndarray, geometry: ImageGeometry) -> Tuple[np.ndarray, Tuple[np.ndarray, ...]]:
    k, j, i = np.nonzero(mask)
    return geometry.ijk_to_ras_points(np.stack([i, j, k], axis=1).astype(float)), (k, j, i)


def estimate_frame(bone: np.ndarray, canal: np.ndarray, geometry: ImageGeometry) -> LocalFrame:
    """Local frame of one vertebra from its bone mask and the canal mask (both on ``geometry``)."""
    bone_pts, _ = _points(bone, geometry)
    if len(bone_pts) == 0:
        raise ValueError("The vertebra mask is empty: no sectors can be defined.")
    cb = bone_pts.mean(axis=0)
    canal_pts, _ = _points(canal, geometry)
    # the canal near the vertebra: within its superior-inferior extent (patient z)
    zlo, zhi = bone_pts[:, 2].min(), bone_pts[:, 2].max()
    near = canal_pts[(canal_pts[:, 2] >= zlo) & (canal_pts[:, 2] <= zhi)]
    near = near[np.linalg.norm(near - cb, axis=1) < 60.0]
    if len(near) < 10:
        raise ValueError("The canal mask does not reach this vertebra: no sectors can be defined.")
    cc = near.mean(axis=0)
    # SI axis: principal direction of the canal segment, pointing superior
    evals, evecs = np.linalg.eigh(np.cov((near - cc).T))
    w = evecs[:, np.argmax(evals)]
    if w[2] < 0:
        w = -w
    # with a short, wide canal segment the principal axis may be lateral: fall back to patient S-I
    if abs(w[2]) < 0.7:
        w = np.array([0.0, 0.0, 1.0])
    v = cb - cc
    v -= (v @ w) * w
    v /= np.linalg.norm(v)
    u = np.cross(v, w)
    if u[0] < 0:
        u = -u
    return LocalFrame(cc, u, v, w)


def _canal_extent(canal_pts_local: np.ndarray, bone_w: Tuple[float, float]):
    sel = canal_pts_local[(canal_pts_local[:, 2] >= bone_w[0]) & (canal_pts_local[:, 2] <= bone_w[1])]
    if len(sel) == 0:
        sel = canal_pts_local
    return float(np.percentile(np.abs(sel[:, 0]), 99)), float(sel[:, 1].max()), float(sel[:, 1].min())


def classify_isrc(
    bone: np.ndarray, canal: np.ndarray, geometry: ImageGeometry, frame: Optional[LocalFrame] = None
) -> SectorResult:
    """ISRC sector (1-6) of every voxel of one vertebra's bone mask (see the module docstring)."""
    frame = frame or estimate_frame(bone, canal, geometry)
    bone_pts, (k, j, i) = _points(bone, geometry)
    loc = frame.coords(bone_pts)
    canal_pts, _ = _points(canal, geometry)
    half, v_ant, v_post = _canal_extent(frame.coords(canal_pts), (loc[:, 2].min(), loc[:, 2].max()))
    u, v = loc[:, 0], loc[:, 1]
    lab = np.zeros(len(u), np.int8)
    lab[v > v_ant] = 1
    mid = (v <= v_ant) & (v >= v_post)
    lab[mid & (u < 0)] = 2
    lab[mid & (u >= 0)] = 6
    back = v < v_post
    sp_half = max(SPINOUS_HALF_WIDTH * half, 3.0)
    lab[back & (np.abs(u) <= sp_half)] = 4
    lab[back & (u < -sp_half)] = 3
    lab[back & (u > sp_half)] = 5
    out = np.zeros(bone.shape, np.int8)
    out[k, j, i] = lab
    return SectorResult(out, frame, half, v_ant, v_post, dict(ISRC_NAMES))


def classify_sacral(
    bone: np.ndarray,
    canal: np.ndarray,
    geometry: ImageGeometry,
    foramina: Optional[np.ndarray] = None,
    frame: Optional[LocalFrame] = None,
) -> SectorResult:
    """Sacral sector (1 body, 2 left ala, 3 right ala, 4 posterior) of one sacral segment's bone mask.

    The body/ala boundary runs through the foramina when their mask is given (2 mm medial to the median
    lateral position of the foramina voxels), else at 1.6 canal half-widths from the midline."""
    frame = frame or estimate_frame(bone, canal, geometry)
    bone_pts, (k, j, i) = _points(bone, geometry)
    loc = frame.coords(bone_pts)
    canal_pts, _ = _points(canal, geometry)
    half, v_ant, v_post = _canal_extent(frame.coords(canal_pts), (loc[:, 2].min(), loc[:, 2].max()))
    split = 1.6 * half
    if foramina is not None and foramina.any():
        f = frame.coords(_points(foramina, geometry)[0])
        f = f[(f[:, 2] >= loc[:, 2].min() - 15) & (f[:, 2] <= loc[:, 2].max() + 15) & (np.abs(f[:, 0]) > half)]
        if len(f):
            split = float(np.median(np.abs(f[:, 0]))) - 2.0
    u, v = loc[:, 0], loc[:, 1]
    lab = np.full(len(u), 4, np.int8)
    lab[(np.abs(u) <= split) & (v > v_ant)] = 1
    lab[u < -split] = 2
    lab[u > split] = 3
    out = np.zeros(bone.shape, np.int8)
    out[k, j, i] = lab
    return SectorResult(out, frame, half, v_ant, v_post, dict(SACRAL_NAMES))


@dataclass(frozen=True)
class SectorDecision:
    involved: FrozenSet[int]
    included: FrozenSet[int]
    rule: str


def involved_sectors(labels: np.ndarray, gtv: np.ndarray) -> Set[int]:
    """Sectors the GTV intersects (any voxel in common)."""
    return {int(s) for s in np.unique(labels[gtv & (labels > 0)])}


def isrc_ctv_sectors(
    labels: np.ndarray, gtv: np.ndarray, gtv_body_u: Optional[np.ndarray] = None, body_width: Optional[float] = None
) -> SectorDecision:
    """Apply the ISRC rules (module docstring). ``gtv_body_u`` holds the lateral positions (mm, + patient
    right, from the canal's midline) of the GTV voxels in the body and ``body_width`` the body's width;
    without them a GTV confined to the body gives {1}."""
    inv = involved_sectors(labels, gtv)
    left = inv & {2, 3}
    right = inv & {5, 6}
    if not inv:
        return SectorDecision(frozenset(), frozenset(), "GTV outside the vertebra: no bony CTV sectors")
    if inv == {1}:
        if gtv_body_u is not None and len(gtv_body_u) and body_width:
            frac_right = float(np.mean(gtv_body_u > 0))
            span = float(np.ptp(gtv_body_u))
            if span >= 0.6 * body_width and 0.2 <= frac_right <= 0.8:
                return SectorDecision(frozenset(inv), frozenset({1, 2, 6}), "body, diffuse: {1, 2, 6}")
            if frac_right >= 0.8:
                return SectorDecision(frozenset(inv), frozenset({1, 6}), "body, lateralised right: {1, 6}")
            if frac_right <= 0.2:
                return SectorDecision(frozenset(inv), frozenset({1, 2}), "body, lateralised left: {1, 2}")
        return SectorDecision(frozenset(inv), frozenset({1}), "body only: {1}")
    if 1 in inv and left and right:
        return SectorDecision(frozenset(inv), frozenset(range(1, 7)), "body and both sides: circumferential {1-6}")
    if 1 in inv and (left or right):
        side = {2, 3} if left else {5, 6}
        return SectorDecision(frozenset(inv), frozenset({1} | side), f"body and one side: {sorted({1} | side)}")
    out: Set[int] = set(inv)
    rules = {2: {2, 3}, 6: {5, 6}, 3: {2, 3, 4}, 5: {4, 5, 6}, 4: {3, 4, 5}, 1: {1}}
    for sector in inv:
        out |= rules[sector]
    return SectorDecision(frozenset(inv), frozenset(out), f"posterior elements: {sorted(out)}")


def isrc_ctv(
    bone: np.ndarray, canal: np.ndarray, gtv: np.ndarray, geometry: ImageGeometry, frame: Optional[LocalFrame] = None
) -> Tuple[np.ndarray, SectorResult, SectorDecision]:
    """Classify one vertebra (``bone``) into ISRC sectors and build its CTV from the GTV (same grid)."""
    res = classify_isrc(bone, canal, geometry, frame)
    body = res.labels == 1
    body_u = res.frame.coords(_points(body, geometry)[0])[:, 0]
    gtv_u = res.frame.coords(_points(gtv & body, geometry)[0])[:, 0]
    width = float(np.ptp(body_u)) if len(body_u) else None
    decision = isrc_ctv_sectors(res.labels, gtv, gtv_u, width)
    return ctv_from_sectors(res.labels, decision.included, gtv), res, decision


def sacral_ctv(
    bone: np.ndarray,
    canal: np.ndarray,
    gtv: np.ndarray,
    geometry: ImageGeometry,
    foramina: Optional[np.ndarray] = None,
    frame: Optional[LocalFrame] = None,
) -> Tuple[np.ndarray, SectorResult, SectorDecision]:
    """Classify one sacral segment into sacral sectors and build its CTV from the GTV (same grid)."""
    res = classify_sacral(bone, canal, geometry, foramina, frame)
    decision = sacral_ctv_sectors(res.labels, gtv)
    return ctv_from_sectors(res.labels, decision.included, gtv), res, decision


def sacral_ctv_sectors(labels: np.ndarray, gtv: np.ndarray) -> SectorDecision:
    """Involved sacral sectors plus their adjacent sectors (module docstring)."""
    inv = involved_sectors(labels, gtv)
    out: Set[int] = set(inv)
    for s in inv:
        out |= _SACRAL_ADJACENT[s]
    return SectorDecision(frozenset(inv), frozenset(out), f"involved {sorted(inv)} + adjacent: {sorted(out)}")


def ctv_from_sectors(labels: np.ndarray, included: Iterable[int], gtv: np.ndarray) -> np.ndarray:
    """CTV = bone of the included sectors, united with the GTV."""
    inc = np.array(sorted(set(included)), np.int8)
    return (np.isin(labels, inc) & (labels > 0)) | gtv
