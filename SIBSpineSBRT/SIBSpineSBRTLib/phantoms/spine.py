"""Analytic vertebrae for the synthetic spine phantoms: body, pedicles, articular pillars, laminae,
transverse and spinous processes, discs, canal, thecal sac and cord, and the sacrum (body, ala, canal,
foramina).

Every shape is an implicit function of patient (RAS) coordinates, so the same anatomy can be sampled on
any grid (the CT, the MR on its own rotated grid, a dose grid) and the grids agree exactly.

Each vertebra has a local frame: ``u`` = patient left-right (+x, towards the patient's right), ``v`` =
antero-posterior in the vertebra's own plane (+ anterior) and ``w`` = along the spine (+ cranial). The
frame is the patient frame rotated about the left-right axis by the vertebra's tilt ``theta`` (the
cranial axis leans anteriorly for theta > 0), and its origin is the centre of the vertebral body.

Dimensions are typical adult values (mm), interpolated between anchor levels; they are plausible, not
measured on a particular patient.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

# -- dimensions per level ------------------------------------------------------------------------------

LEVELS = tuple(
    [f"C{n}" for n in range(1, 8)]
    + [f"T{n}" for n in range(1, 13)]
    + [f"L{n}" for n in range(1, 6)]
    + [f"S{n}" for n in range(1, 6)]
)

#: Part identifiers of a vertebra (``L`` = patient left, -x; ``R`` = patient right, +x).
BODY, PEDICLE_L, PEDICLE_R, LAMINA_L, LAMINA_R, TP_L, TP_R, SPINOUS, PILLAR_L, PILLAR_R = range(1, 11)
#: Sacral segment parts.
SAC_BODY, SAC_ALA_L, SAC_ALA_R, SAC_POSTERIOR = 11, 12, 13, 14
PART_NAMES = {
    BODY: "body",
    PEDICLE_L: "pedicle_L",
    PEDICLE_R: "pedicle_R",
    LAMINA_L: "lamina_L",
    LAMINA_R: "lamina_R",
    TP_L: "transverse_L",
    TP_R: "transverse_R",
    SPINOUS: "spinous",
    PILLAR_L: "pillar_L",
    PILLAR_R: "pillar_R",
    SAC_BODY: "sacral_body",
    SAC_ALA_L: "ala_L",
    SAC_ALA_R: "ala_R",
    SAC_POSTERIOR: "sacral_posterior",
}

_FIELDS = (
    "body_w body_d body_h disc_below canal_w canal_d pedicle_w pedicle_h lamina_t tp_reach tp_t tp_back "
    "sp_len sp_h sp_w sp_slope cortex sac_w sac_d cord_w cord_d cancellous_hu"
).split()

# Anchor dimensions (mm; HU for cancellous bone). Between anchors values are interpolated by level.
_ANCHORS = {
    "C2": (16, 15, 14, 5.0, 23, 14, 5, 7, 4.5, 24, 7, 0.0, 18, 10, 6, 0.35, 1.0, 17, 11, 11, 7.5, 320),
    "C5": (18, 16, 13.5, 5.5, 24, 14, 5.5, 7, 4.5, 27, 7, 0.0, 16, 8, 5, 0.30, 1.0, 17, 11, 12, 8, 310),
    "C7": (21, 16, 14.5, 5.0, 22, 14, 6, 8, 5.0, 33, 8, 0.05, 28, 9, 6, 0.35, 1.0, 16, 11, 11, 7.5, 300),
    "T1": (25, 18, 16, 4.5, 19, 14, 7, 10, 6.0, 38, 9, 0.35, 30, 9, 6, 0.70, 1.0, 14, 12, 9, 7, 280),
    "T6": (28, 25, 19, 4.5, 15, 15, 6.5, 12, 6.5, 34, 9, 0.55, 24, 8, 6, 1.00, 1.0, 12, 12, 8, 6.5, 250),
    "T10": (33, 28, 22, 6.0, 16, 15, 7, 13, 7.0, 30, 9, 0.45, 24, 11, 7, 0.60, 1.1, 13, 12, 8.5, 7, 240),
    "T12": (38, 30, 24, 7.5, 19, 16, 8, 14, 7.0, 22, 8, 0.20, 28, 16, 8, 0.30, 1.1, 15, 12, 9, 7.5, 230),
    "L1": (41, 31, 25, 9.0, 21, 16, 8.5, 15, 7.5, 30, 8, 0.05, 28, 20, 8, 0.10, 1.1, 16, 12.5, 8, 7, 220),
    "L3": (46, 33, 27, 11.0, 23, 16, 9, 15, 8.0, 40, 8, 0.0, 28, 22, 9, 0.05, 1.1, 17, 13, 0, 0, 210),
    "L5": (50, 34, 26, 11.0, 26, 16, 12, 15, 8.0, 40, 12, 0.0, 22, 16, 8, 0.0, 1.1, 16, 12, 0, 0, 200),
}


@dataclass(frozen=True)
class VertebraSpec:
    """Dimensions of one vertebra (mm): widths are full widths, ``disc_below`` is the height of the disc
    under the body, ``tp_back`` the posterior slope of the transverse process (mm back per mm out) and
    ``sp_slope`` the caudal slope of the spinous process (mm down per mm back); ``sp_len`` is the spinous
    process's posterior projection (its length is ``sp_len * sqrt(1 + sp_slope**2)``)."""

    level: str
    body_w: float
    body_d: float
    body_h: float
    disc_below: float
    canal_w: float
    canal_d: float
    pedicle_w: float
    pedicle_h: float
    lamina_t: float
    tp_reach: float
    tp_t: float
    tp_back: float
    sp_len: float
    sp_h: float
    sp_w: float
    sp_slope: float
    cortex: float
    sac_w: float
    sac_d: float
    cord_w: float
    cord_d: float
    cancellous_hu: float


def vertebra_spec(level: str) -> VertebraSpec:
    """Dimensions of a cervical, thoracic or lumbar vertebra (C2-L5), interpolated between anchors."""
    idx = LEVELS.index(level)
    anchors = sorted((LEVELS.index(k), np.array(v, float)) for k, v in _ANCHORS.items())
    lo = max((a for a in anchors if a[0] <= idx), key=lambda a: a[0], default=anchors[0])
    hi = min((a for a in anchors if a[0] >= idx), key=lambda a: a[0], default=anchors[-1])
    t = 0.0 if hi[0] == lo[0] else (idx - lo[0]) / (hi[0] - lo[0])
    vals = (1 - t) * lo[1] + t * hi[1]
    spec = VertebraSpec(level, *[float(x) for x in vals])
    if level in ("L2", "L3", "L4", "L5"):  # the cord ends at L1-L2: no cord below
        spec = replace(spec, cord_w=0.0, cord_d=0.0)
    return spec


# -- frames --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """A vertebra's local frame: origin (RAS mm) and tilt about the left-right axis (radians)."""

    origin: Tuple[float, float, float]
    theta: float

    def to_local(self, x, y, z):
        """(u, v, w) of RAS points (arrays, float32 kept)."""
        c, s = np.float32(np.cos(self.theta)), np.float32(np.sin(self.theta))
        dy = y - np.float32(self.origin[1])
        dz = z - np.float32(self.origin[2])
        return x - np.float32(self.origin[0]), dy * c - dz * s, dy * s + dz * c

    def to_ras(self, u, v, w) -> np.ndarray:
        """RAS points (N, 3) of local coordinates."""
        c, s = np.cos(self.theta), np.sin(self.theta)
        u, v, w = (np.asarray(a, float) for a in (u, v, w))
        y = v * c + w * s
        z = -v * s + w * c
        return np.stack([u + self.origin[0], y + self.origin[1], z + self.origin[2]], axis=-1)

    @property
    def axes_ras(self) -> np.ndarray:
        """3x3 matrix whose columns are the RAS directions of u, v and w."""
        c, s = np.cos(self.theta), np.sin(self.theta)
        return np.array([[1.0, 0.0, 0.0], [0.0, c, s], [0.0, -s, c]])


def _tangent(theta: float) -> np.ndarray:
    """Cranial direction (y, z) of a frame tilted by theta."""
    return np.array([np.sin(theta), np.cos(theta)])


# -- shapes ----------------------------------------------------------------------------------------------


def _ell(a, b, da, db, shrink=0.0):
    """Inside an ellipse with semi-axes da, db (mm) at offsets a, b, shrunk by ``shrink`` mm."""
    ra, rb = max(da - shrink, 0.1), max(db - shrink, 0.1)
    return (a / np.float32(ra)) ** 2 + (b / np.float32(rb)) ** 2 <= 1.0


def _capsule(u, v, p0, p1, r):
    """Distance from (u, v) to the segment p0-p1 is at most r (also returns the segment parameter)."""
    d = np.array(p1, float) - np.array(p0, float)
    L2 = float(d @ d)
    t = np.clip(((u - np.float32(p0[0])) * np.float32(d[0]) + (v - np.float32(p0[1])) * np.float32(d[1])) / L2, 0, 1)
    du = u - np.float32(p0[0]) - t * np.float32(d[0])
    dv = v - np.float32(p0[1]) - t * np.float32(d[1])
    return du * du + dv * dv <= np.float32(r) ** 2, t


@dataclass
class Vertebra:
    """One mobile vertebra (C2-L5) placed in the patient."""

    spec: VertebraSpec
    frame: Frame
    disc_above: float  # height of the disc above (mm), for the articular pillars and the canal
    has_vertebral_artery: bool = False
    rib: bool = False

    @property
    def level(self) -> str:
        return self.spec.level

    @property
    def canal_v(self) -> float:
        """v of the canal centre."""
        s = self.spec
        return -s.body_d / 2 - s.canal_d / 2 + 1.0

    @property
    def reach(self) -> float:
        """Radius (mm) around the origin that holds every part of the vertebra."""
        s = self.spec
        back = s.body_d / 2 + s.canal_d + s.lamina_t + s.sp_len + 4
        return float(
            np.hypot(max(s.tp_reach + 6, back, s.body_d), s.body_h / 2 + s.disc_below + s.sp_len * s.sp_slope + 10)
        )

    @property
    def segment_w(self) -> Tuple[float, float]:
        """w range this vertebra's canal segment covers (half the discs above and below, plus overlap)."""
        s = self.spec
        return -s.body_h / 2 - s.disc_below / 2 - 0.6, s.body_h / 2 + self.disc_above / 2 + 0.6

    # -- bone parts -------------------------------------------------------------------------------
    def parts(self, u, v, w, shrink: float = 0.0) -> np.ndarray:
        """Part id (0 = none) of local points; ``shrink`` > 0 gives the parts eroded by that many mm
        (the cancellous core inside the cortex)."""
        s = self.spec
        out = np.zeros(u.shape, np.int8)
        vc = self.canal_v
        # pillars (articular processes), joint spaces of 1.5 mm at mid-disc level above and below
        uf = s.canal_w / 2 + s.pedicle_w / 2
        vf = vc - 0.25 * s.canal_d
        fa, fb = 0.5 * s.pedicle_w + 2.0, 0.3 * s.canal_d + 1.5
        wlo = -s.body_h / 2 - s.disc_below / 2 + 0.75 + shrink
        whi = s.body_h / 2 + self.disc_above / 2 - 0.75 - shrink
        in_w = (w >= wlo) & (w <= whi)
        for sign, pid in ((-1, PILLAR_L), (1, PILLAR_R)):
            out[in_w & _ell(u - sign * uf, v - vf, fa, fb, shrink)] = pid
        # transverse processes
        tp_h = s.tp_t * 1.3
        w_tp = 0.05 * s.body_h
        in_tp_w = np.abs(w - w_tp) <= tp_h / 2 - shrink
        for sign, pid in ((-1, TP_L), (1, TP_R)):
            if self.has_vertebral_artery:  # cervical: from the body side, around the transverse foramen
                p0 = (sign * (s.body_w / 2 - 2), -0.15 * s.body_d)
                p1 = (sign * s.tp_reach, vf + 2)
                inside, _ = _capsule(u, v, p0, p1, s.tp_t / 2 - shrink)
                fu, fv = self.foramen_transversarium(sign)
                inside &= (u - fu) ** 2 + (v - fv) ** 2 > (3.0 + shrink) ** 2
            else:
                u0 = s.canal_w / 2 + s.pedicle_w * 0.8
                p0 = (sign * u0, vf + 1)
                p1 = (sign * s.tp_reach, vf + 1 - s.tp_back * (s.tp_reach - u0))
                inside, t = _capsule(u, v, p0, p1, s.tp_t / 2 - shrink)
            out[inside & in_tp_w & (out == 0)] = pid
        # laminae
        v_cut = vc - 0.15 * s.canal_d
        ring = _ell(u, v - vc, s.canal_w / 2 + s.lamina_t, s.canal_d / 2 + s.lamina_t, shrink) & ~_ell(
            u, v - vc, s.canal_w / 2 + 0.5 + shrink, s.canal_d / 2 + 0.5 + shrink
        )
        lam = ring & (v <= v_cut) & (np.abs(u) <= uf) & (w >= -s.body_h / 2 - 0.5 * s.disc_below + shrink)
        lam &= w <= s.body_h / 2 - 3.0 - shrink
        out[lam & (u < 0) & (out == 0)] = LAMINA_L
        out[lam & (u >= 0) & (out == 0)] = LAMINA_R
        # spinous process
        v0 = vc - s.canal_d / 2 - s.lamina_t * 0.6
        t = (v0 - v) / np.float32(s.sp_len)
        w_c = -0.1 * s.body_h - s.sp_slope * (v0 - v)
        hh = s.sp_h / 2 * (1 - 0.25 * t) - shrink
        hw = s.sp_w / 2 * (1 - 0.3 * t) - shrink
        sp = (t >= 0) & (t <= 1 - shrink / s.sp_len) & (np.abs(w - w_c) <= hh) & (np.abs(u) <= hw)
        if self.has_vertebral_artery and self.level != "C7":  # bifid tip
            sp &= ~((t > 0.75) & (np.abs(u) < 1.2))
        out[sp & (out == 0)] = SPINOUS
        # pedicles (attached to the upper half of the body)
        w_p = 0.1 * s.body_h
        up = s.canal_w / 2 + s.pedicle_w / 2 - 0.5
        in_v = (v >= vc - 0.1 * s.canal_d) & (v <= -0.3 * s.body_d)
        for sign, pid in ((-1, PEDICLE_L), (1, PEDICLE_R)):
            out[in_v & _ell(u - sign * up, w - w_p, s.pedicle_w / 2, s.pedicle_h / 2, shrink)] = pid
        # body: an ellipse flattened posteriorly, with waisted sides and concave endplates
        out[self.body(u, v, w, shrink)] = BODY
        # no bone inside the canal
        out[_ell(u, v - vc, s.canal_w / 2 + shrink, s.canal_d / 2 + shrink)] = 0
        return out

    def body(self, u, v, w, shrink: float = 0.0) -> np.ndarray:
        s = self.spec
        hz = np.float32(s.body_h / 2)
        waist = 1.0 - 0.05 * (1.0 - np.minimum((w / hz) ** 2, 1.0))
        a = np.float32(s.body_w / 2 - shrink) * waist
        b = np.float32(s.body_d / 2 * 1.06 - shrink)
        r2 = (u / a) ** 2 + (v / b) ** 2
        flat = v >= -s.body_d / 2 + shrink + 1.5 * np.clip(1 - (u / (s.canal_w / 2)) ** 2, 0, 1)
        return (r2 <= 1) & flat & (np.abs(w) <= hz - shrink - 1.0 * np.clip(1 - r2, 0, 1))

    def foramen_transversarium(self, sign: int) -> Tuple[float, float]:
        s = self.spec
        return sign * (s.body_w / 2 + 4.0), -0.3 * s.body_d

    # -- canal contents ---------------------------------------------------------------------------
    def canal(self, u, v, w) -> np.ndarray:
        s = self.spec
        lo, hi = self.segment_w
        return _ell(u, v - self.canal_v, s.canal_w / 2, s.canal_d / 2) & (w >= lo) & (w <= hi)

    def sac(self, u, v, w) -> np.ndarray:
        s = self.spec
        lo, hi = self.segment_w
        dv = 1.0 if self.level.startswith("T") else 0.5
        return _ell(u, v - self.canal_v - dv, s.sac_w / 2, s.sac_d / 2) & (w >= lo) & (w <= hi)

    def cord(self, u, v, w, conus_w: Optional[float] = None) -> np.ndarray:
        """Cord inside the sac; ``conus_w`` (local w of the conus tip) tapers it to an end."""
        s = self.spec
        if s.cord_w <= 0:
            return np.zeros(u.shape, bool)
        lo, hi = self.segment_w
        dv = 1.5 if self.level.startswith("T") else 0.5
        scale = 1.0
        if conus_w is not None:
            scale = np.sqrt(np.clip((w - np.float32(conus_w)) / 14.0, 0.0, 1.0))
            lo = max(lo, conus_w)
        a = np.float32(s.cord_w / 2) * scale + 1e-3
        b = np.float32(s.cord_d / 2) * scale + 1e-3
        return ((u / a) ** 2 + ((v - self.canal_v - dv) / b) ** 2 <= 1) & (w >= lo) & (w <= hi)

    def corners_local(self) -> np.ndarray:
        """The 8 corners of the vertebral body's bounding box (local u, v, w)."""
        s = self.spec
        return np.array(
            [[a * s.body_w / 2, b * s.body_d / 2, c * s.body_h / 2] for a in (-1, 1) for b in (-1, 1) for c in (-1, 1)]
        )


def _dims(e) -> Tuple[float, float, float, float, float]:
    """(body_w, body_d, body_h, canal_w, disc_below) of a vertebra or sacral segment."""
    if isinstance(e, Vertebra):
        s = e.spec
        return s.body_w, s.body_d, s.body_h, s.canal_w, s.disc_below
    return e.body_w, e.body_d, e.height, e.canal_w, 0.0


def disc_between(upper, lower, x, y, z) -> Tuple[np.ndarray, np.ndarray]:
    """(disc, nucleus) masks of the disc between two vertebrae (points given in RAS)."""
    uu, vu, wu = upper.frame.to_local(x, y, z)
    ul, vl, wl = lower.frame.to_local(x, y, z)
    bw_u, bd_u, bh_u, cw_u, disc_u = _dims(upper)
    bw_l, bd_l, bh_l, _, _ = _dims(lower)
    a = (bw_u + bw_l) / 4 + 0.5
    b = (bd_u + bd_l) / 4 * 1.04
    r2 = (uu / np.float32(a)) ** 2 + (vu / np.float32(b)) ** 2
    flat = vu >= -(bd_u + bd_l) / 4 + 1.0 * np.clip(1 - (uu / (cw_u / 2)) ** 2, 0, 1)
    between = (wu <= -bh_u / 2 + 1.2) & (wl >= bh_l / 2 - 1.2) & (wu >= -bh_u / 2 - disc_u - 3)
    disc = between & (r2 <= 1) & flat
    nucleus = disc & (r2 <= 0.3) & (vu > -b * 0.4)
    return disc, nucleus


# -- sacrum ----------------------------------------------------------------------------------------------

#: Per sacral segment (S1..S5): height along the axis, body width/depth, canal width/depth, lateral mass
#: half-width (ala), foramen radius at its lower junction, tilt (degrees).
_SACRAL = (
    (28.0, 48.0, 31.0, 30.0, 13.0, 56.0, 5.0, 40.0),
    (24.0, 40.0, 25.0, 26.0, 11.0, 47.0, 4.5, 29.0),
    (20.0, 32.0, 20.0, 22.0, 9.0, 37.0, 3.8, 17.0),
    (16.0, 24.0, 15.0, 16.0, 7.0, 27.0, 3.2, 5.0),
    (13.0, 16.0, 11.0, 10.0, 5.0, 16.0, 0.0, -7.0),
)


@dataclass
class SacralSegment:
    """One fused segment of the sacrum (S1-S5) with its local frame (see the module docstring)."""

    index: int  # 1..5
    frame: Frame
    height: float
    body_w: float
    body_d: float
    canal_w: float
    canal_d: float
    ala: float  # half-width of the lateral mass
    foramen_r: float  # radius of the foramen at the segment's lower junction (0: none)
    cortex: float = 1.1
    cancellous_hu: float = 190.0

    @property
    def level(self) -> str:
        return f"S{self.index}"

    @property
    def canal_v(self) -> float:
        return -self.body_d / 2 - self.canal_d / 2 + 1.5

    @property
    def reach(self) -> float:
        return float(np.hypot(self.ala + 8, self.height / 2 + 12) + 8)

    @property
    def segment_w(self) -> Tuple[float, float]:
        return -self.height / 2 - 0.6, self.height / 2 + 0.6

    def foramen_u(self) -> float:
        return self.body_w / 2 + 5.0

    def _w_pad(self, v):
        """The sacrum curves (concave anteriorly), so consecutive segments' slabs open a wedge behind the
        body: posterior points get a wider slab to keep the bone continuous."""
        return 0.5 + 0.2 * np.clip(-v - 5.0, 0, None)

    def parts(self, u, v, w, shrink: float = 0.0) -> np.ndarray:
        out = np.zeros(u.shape, np.int8)
        pad = self._w_pad(v)
        in_w = (w >= -self.height / 2 - pad) & (w <= self.height / 2 + pad)
        if self.index == 1:
            in_w &= w <= self.height / 2 - shrink
        if self.index == 5:
            in_w &= w >= -self.height / 2 + shrink
        vc = self.canal_v
        au = np.abs(u)
        # lateral masses: a plate from the body to the sacro-iliac joint, sloping back laterally
        lat = np.clip(au - self.body_w / 2 + 4, 0, None)
        v_ant = self.body_d / 2 * 0.55 - 0.28 * lat - shrink
        v_post = vc - self.canal_d / 2 - 5.0 + 0.12 * lat + shrink
        ala = in_w & (au <= self.ala - shrink) & (v <= v_ant) & (v >= v_post)
        # the S1 ala rises a little above the S1 body (sacral base)
        out[ala & (u < 0)] = SAC_ALA_L
        out[ala & (u >= 0)] = SAC_ALA_R
        # posterior wall of the canal and the median crest
        roof = _ell(u, v - vc, self.canal_w / 2 + 5.0, self.canal_d / 2 + 5.0, shrink) & (v <= vc) & in_w
        crest = in_w & (au <= 3.0 - shrink) & (v <= vc) & (v >= vc - self.canal_d / 2 - 14.0 + shrink)
        out[(roof | crest) & (out == 0)] = SAC_POSTERIOR
        out[roof & (au <= self.canal_w / 2 + 5.0) & (v < vc - self.canal_d / 4)] = SAC_POSTERIOR
        body = _ell(u, v, self.body_w / 2, self.body_d / 2, shrink) & in_w & (v >= -self.body_d / 2 + shrink)
        out[body] = SAC_BODY
        tri = 1.0 + 0.35 * np.clip((v - vc) / (self.canal_d / 2), -1, 1)
        out[_ell(u / tri, v - vc, self.canal_w / 2 + shrink, self.canal_d / 2 + shrink)] = 0
        return out

    def canal(self, u, v, w) -> np.ndarray:
        lo, hi = self.segment_w
        pad = self._w_pad(v)
        if self.index == 1:
            hi += 12.0  # up to the L5 endplate through the L5-S1 disc level (see cases.py)
        tri = 1.0 + 0.35 * np.clip((v - self.canal_v) / (self.canal_d / 2), -1, 1)  # wider anteriorly
        return _ell(u / tri, v - self.canal_v, self.canal_w / 2, self.canal_d / 2) & (w >= lo - pad) & (w <= hi + pad)

    def foramina(self, u, v, w) -> np.ndarray:
        """Bony foramina at the segment's lower junction: the channel from the canal to the anterior and
        posterior surfaces of the lateral mass (both sides)."""
        if self.foramen_r <= 0:
            return np.zeros(u.shape, bool)
        wj = -self.height / 2
        r = self.foramen_r
        out = np.zeros(u.shape, bool)
        for sign in (-1, 1):
            uf = sign * self.foramen_u()
            # antero-posterior channel through the lateral mass
            ch = (
                ((u - uf) ** 2 + (w - wj) ** 2 <= r * r)
                & (v <= self.body_d / 2 * 0.6)
                & (v >= self.canal_v - 2 - self.canal_d / 2 - 6)
            )
            # the intervertebral foramen, from the canal's lateral edge to the channel
            side, _ = _capsule(u, w, (sign * self.canal_w / 2, wj), (uf, wj), r * 0.8)
            side &= np.abs(v - self.canal_v) <= self.canal_d / 2
            out |= ch | side
        return out

    def sac(self, u, v, w, tip_w: float) -> np.ndarray:
        """Thecal sac, ending (tapered) at local ``tip_w``."""
        lo, hi = self.segment_w
        pad = self._w_pad(v)
        lo, hi = lo - pad, hi + pad
        if self.index == 1:
            hi = hi + 12.0
        scale = np.sqrt(np.clip((w - np.float32(tip_w)) / 12.0, 0, 1))
        a = np.float32(self.canal_w / 2 - 3.5) * scale + 1e-3
        b = np.float32(self.canal_d / 2 - 2.0) * scale + 1e-3
        return ((u / a) ** 2 + ((v - self.canal_v - 0.5) / b) ** 2 <= 1) & (w >= np.maximum(lo, tip_w)) & (w <= hi)

    def corners_local(self) -> np.ndarray:
        return np.array(
            [
                [a * self.body_w / 2, b * self.body_d / 2, c * self.height / 2]
                for a in (-1, 1)
                for b in (-1, 1)
                for c in (-1, 1)
            ]
        )


# -- the column ------------------------------------------------------------------------------------------


@dataclass
class Column:
    """The vertebrae of a phantom, cranial first, with the sacrum's segments when present."""

    vertebrae: List[Vertebra]
    sacrum: List[SacralSegment]
    conus_level: str = "L1"  # the cord ends at the bottom of this vertebra's body (L1-L2 disc)
    sac_end: str = "S2"

    def by_level(self) -> Dict[str, object]:
        out: Dict[str, object] = {v.level: v for v in self.vertebrae}
        out.update({s.level: s for s in self.sacrum})
        return out

    def neighbours(self, level: str, n: int = 1) -> List[object]:
        """The element at ``level`` and up to ``n`` elements above and below it."""
        items = list(self.vertebrae) + list(self.sacrum)
        names = [e.level for e in items]
        i = names.index(level)
        return items[max(0, i - n) : i + n + 1]


def build_column(target: str, tilt_deg: Dict[str, float], n_above: int = 3, n_below: int = 3) -> Column:
    """Place vertebrae around ``target`` (whose body centre is the RAS origin).

    ``tilt_deg`` gives each level's tilt (degrees, cranial axis leaning anteriorly when positive); levels
    not listed are interpolated. For a sacral target the sacrum (S1-S5) is built with L5 and above.
    """
    sacral = target.startswith("S")
    ti = LEVELS.index("S1") if sacral else LEVELS.index(target)
    keys = sorted((LEVELS.index(k), v) for k, v in tilt_deg.items())

    def tilt(level: str) -> float:
        i = LEVELS.index(level)
        xs = [k for k, _ in keys]
        return float(np.radians(np.interp(i, xs, [v for _, v in keys])))

    lo = max(LEVELS.index("C2"), ti - n_above)
    hi = LEVELS.index("L5") if sacral else min(LEVELS.index("L5"), ti + n_below)
    names = list(LEVELS[lo : hi + 1]) if not sacral else list(LEVELS[lo:ti])
    specs = {n: vertebra_spec(n) for n in names}
    centres: Dict[str, np.ndarray] = {}
    if sacral:
        seg = [SacralSegment(k + 1, Frame((0.0, 0.0, 0.0), np.radians(p[7])), *p[:7]) for k, p in enumerate(_SACRAL)]
        # march down the sacrum
        for k in range(1, 5):
            prev = seg[k - 1]
            th = np.radians(_SACRAL[k][7])
            t = _tangent((prev.frame.theta + th) / 2)
            d = prev.height / 2 + seg[k].height / 2 + 1.0
            c = np.array(prev.frame.origin) - np.array([0.0, t[0] * d, t[1] * d])
            seg[k] = replace(seg[k], frame=Frame(tuple(c), th))
        # L5 above S1: L5-S1 disc
        anchor_c, anchor_th, anchor_h = np.zeros(3), seg[0].frame.theta, seg[0].height
        upward = list(reversed(names))
    else:
        seg = []
        upward = list(reversed(names[: names.index(target)]))
        centres[target] = np.zeros(3)
        anchor_c, anchor_th, anchor_h = np.zeros(3), tilt(target), specs[target].body_h
    # march up from the anchor
    c_prev, th_prev, h_prev = anchor_c, anchor_th, anchor_h
    disc_prev = None
    for n in upward:
        sp = specs[n]
        th = tilt(n)
        t = _tangent((th + th_prev) / 2)
        d = h_prev / 2 + sp.disc_below + sp.body_h / 2
        c = c_prev + np.array([0.0, t[0] * d, t[1] * d])
        centres[n] = c
        c_prev, th_prev, h_prev = c, th, sp.body_h
        disc_prev = sp.disc_below
    del disc_prev
    # march down from the target (mobile column only)
    if not sacral:
        c_prev, th_prev, sp_prev = np.zeros(3), tilt(target), specs[target]
        for n in names[names.index(target) + 1 :]:
            sp = specs[n]
            th = tilt(n)
            t = _tangent((th + th_prev) / 2)
            d = sp_prev.body_h / 2 + sp_prev.disc_below + sp.body_h / 2
            c = c_prev - np.array([0.0, t[0] * d, t[1] * d])
            centres[n] = c
            c_prev, th_prev, sp_prev = c, th, sp
    verts = []
    for k, n in enumerate(names):
        above = specs[names[k - 1]].disc_below if k > 0 else specs[n].disc_below
        cerv = n.startswith("C") and n != "C7"
        verts.append(
            Vertebra(specs[n], Frame(tuple(float(a) for a in centres[n]), tilt(n)), above, cerv, n.startswith("T"))
        )
    return Column(verts, seg)


def level_distance_mm(column: Column, level: str) -> float:
    """Distance (mm) between the target's centre and ``level``'s centre."""
    e = column.by_level()[level]
    return float(np.linalg.norm(e.frame.origin))


def corners_ras(element) -> np.ndarray:
    """The vertebral body's 8 bounding-box corners in RAS (8, 3)."""
    c = element.corners_local()
    return element.frame.to_ras(c[:, 0], c[:, 1], c[:, 2])


def union_reach(elements: Sequence[object], margin: float = 0.0) -> Tuple[np.ndarray, np.ndarray]:
    """RAS bounding box (lo, hi) of spheres that hold the given vertebrae/segments."""
    lo = np.min([np.array(e.frame.origin) - e.reach - margin for e in elements], axis=0)
    hi = np.max([np.array(e.frame.origin) + e.reach + margin for e in elements], axis=0)
    return lo, hi
