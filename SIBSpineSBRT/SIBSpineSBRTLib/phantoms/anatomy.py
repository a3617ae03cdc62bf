"""Synthetic patients: body habitus, organs and the spine as tissue labels at any set of RAS points.

``Anatomy.sample(x, y, z)`` returns the tissue class of each point (and, on request, the named
structures and the target vertebra's parts), so the CT, the MR (on its own grid, moved by a rigid
transform) and the dose model all see the same patient. Shapes are analytic (ellipses, superellipses,
capsules, the vertebra model of ``spine.py``); textures (trabecular bone, lung, a mixed lesion) are
sums of a few plane waves with fixed parameters, so they too agree between grids.

Coordinates are RAS mm with the target vertebral body's centre at the origin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import spine as sp

# -- tissue classes --------------------------------------------------------------------------------------

TISSUES = (
    # name, CT HU, MR T1 (relative), MR T2 (relative)
    ("air", -1000, 0.0, 0.0),
    ("lung", -840, 0.03, 0.03),
    ("fat", -100, 0.95, 0.78),
    ("muscle", 50, 0.33, 0.20),
    ("soft", 40, 0.45, 0.40),
    ("blood", 45, 0.08, 0.06),  # flowing blood: dark on spin-echo MR
    ("heart", 42, 0.40, 0.30),
    ("liver", 62, 0.55, 0.28),
    ("kidney", 32, 0.42, 0.62),
    ("bowel_wall", 42, 0.40, 0.38),
    ("bowel_fluid", 14, 0.18, 0.85),
    ("gas", -960, 0.0, 0.0),
    ("oesophagus", 40, 0.40, 0.32),
    ("cartilage", 120, 0.35, 0.30),
    ("thyroid", 95, 0.50, 0.48),
    ("csf", 8, 0.10, 1.0),
    ("cord", 33, 0.52, 0.40),
    ("nerve", 30, 0.45, 0.36),
    ("epidural_fat", -70, 0.88, 0.70),
    ("annulus", 95, 0.30, 0.18),
    ("nucleus", 75, 0.38, 0.78),
    ("cancellous", 220, 0.70, 0.47),  # HU replaced per vertebra level
    ("cortical", 1150, 0.03, 0.03),
    ("lytic", 42, 0.22, 0.82),
    ("blastic", 950, 0.06, 0.07),
    ("couch_shell", 260, 0.0, 0.0),
    ("couch_foam", -900, 0.0, 0.0),
    ("urine", 10, 0.12, 0.95),
)
T = {name: i for i, (name, *_rest) in enumerate(TISSUES)}
HU = np.array([t[1] for t in TISSUES], np.float32)
T1 = np.array([t[2] for t in TISSUES], np.float32)
T2 = np.array([t[3] for t in TISSUES], np.float32)


# -- smooth deterministic textures ---------------------------------------------------------------------


@dataclass(frozen=True)
class WaveField:
    """A smooth random field: sum of cosines with fixed wave vectors, phases and amplitudes (unit rms)."""

    k: np.ndarray  # (n, 3) rad/mm
    phase: np.ndarray  # (n,)

    @classmethod
    def make(cls, seed: int, n: int = 8, wavelength_mm: Tuple[float, float] = (4.0, 12.0)) -> WaveField:
        rng = np.random.default_rng(seed)
        d = rng.normal(size=(n, 3))
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        lam = rng.uniform(*wavelength_mm, size=n)
        return cls((d * (2 * np.pi / lam)[:, None]).astype(np.float32), rng.uniform(0, 2 * np.pi, n).astype(np.float32))

    def __call__(self, x, y, z) -> np.ndarray:
        out = np.zeros(np.shape(x), np.float32)
        for (kx, ky, kz), ph in zip(self.k, self.phase):
            out += np.cos(kx * x + ky * y + kz * z + ph)
        return out * np.float32(np.sqrt(2.0 / len(self.phase)))


# -- the sampling context ----------------------------------------------------------------------------------


class _Ctx:
    """Points being labelled (1-D float32 x, y, z) and the labels painted so far."""

    def __init__(self, x, y, z, record: bool):
        self.x, self.y, self.z = x, y, z
        self.n = x.size
        self.tissue = np.zeros(self.n, np.uint8)
        self.bone_hu = np.zeros(self.n, np.float32)  # cancellous HU where tissue is cancellous
        self.record = record
        self.structures: Dict[str, np.ndarray] = {}
        self.part = np.zeros(self.n, np.int8) if record else None
        self.lo = np.array([x.min(), y.min(), z.min()]) if self.n else np.zeros(3)
        self.hi = np.array([x.max(), y.max(), z.max()]) if self.n else np.zeros(3)

    def sel(self, lo, hi, within: Optional[np.ndarray] = None) -> Optional[np.ndarray]:
        """Indices of the points inside the RAS box [lo, hi] (optionally among ``within``)."""
        lo = np.asarray(lo, float)
        hi = np.asarray(hi, float)
        if self.n == 0 or np.any(lo > self.hi) or np.any(hi < self.lo):
            return None
        x = self.x if within is None else self.x[within]
        idx = np.flatnonzero((x >= lo[0]) & (x <= hi[0]))
        if within is not None:
            idx = within[idx]
        y = self.y[idx]
        idx = idx[(y >= lo[1]) & (y <= hi[1])]
        if lo[2] > self.lo[2] or hi[2] < self.hi[2]:
            z = self.z[idx]
            idx = idx[(z >= lo[2]) & (z <= hi[2])]
        return idx if idx.size else None

    def shape(self, lo, hi, pred, tissue: str = "", name: str = "", within=None):
        """Paint (and mark) the points of the box [lo, hi] where ``pred(x, y, z)`` holds."""
        idx = self.sel(lo, hi, within)
        if idx is None:
            return None, None
        m = pred(*self.xyz(idx))
        if tissue:
            self.paint(idx, m, tissue)
        if name:
            self.mark(name, idx, m)
        return idx, m

    def se(self, cx, cy, a, b, p, tissue, zlo=-1e4, zhi=1e4, name="", extra=None):
        """A superellipse cylinder (axis along z) between zlo and zhi; ``extra(x, y, z)`` narrows it."""

        def pred(x, y, z):
            m = _superellipse(x, y, cx, cy, a, b, p)
            return m if extra is None else m & extra(x, y, z)

        return self.shape((cx - a, cy - b, zlo), (cx + a, cy + b, zhi), pred, tissue, name)

    def xyz(self, idx):
        return self.x[idx], self.y[idx], self.z[idx]

    def paint(self, idx, mask, tissue: str) -> None:
        if idx is not None:
            self.tissue[idx[mask] if mask is not None else idx] = T[tissue]

    def mark(self, name: str, idx, mask) -> None:
        if not self.record or idx is None:
            return
        arr = self.structures.get(name)
        if arr is None:
            arr = self.structures[name] = np.zeros(self.n, bool)
        arr[idx[mask] if mask is not None else idx] = True


# -- primitives (global RAS) -------------------------------------------------------------------------------


def _superellipse(x, y, cx, cy, a, b, p=2.0):
    return np.abs((x - cx) / np.float32(a)) ** p + np.abs((y - cy) / np.float32(b)) ** p <= 1.0


def _ellipsoid(x, y, z, c, r):
    return ((x - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((z - c[2]) / r[2]) ** 2 <= 1.0


def _seg_dist2(x, y, z, p0, p1):
    """Squared distance from points to the 3-D segment p0-p1."""
    p0 = np.asarray(p0, np.float32)
    d = np.asarray(p1, np.float32) - p0
    L2 = float(d @ d)
    t = np.clip(((x - p0[0]) * d[0] + (y - p0[1]) * d[1] + (z - p0[2]) * d[2]) / L2, 0, 1)
    return (x - p0[0] - t * d[0]) ** 2 + (y - p0[1] - t * d[1]) ** 2 + (z - p0[2] - t * d[2]) ** 2


def _polyline_dist2(x, y, z, pts):
    out = None
    for a, b in zip(pts[:-1], pts[1:]):
        d2 = _seg_dist2(x, y, z, a, b)
        out = d2 if out is None else np.minimum(out, d2)
    return out


@dataclass
class Tube:
    """A tubular organ along a polyline (oesophagus, vessels, bowel loops, colon...)."""

    name: str  # structure name ("" = none)
    points: Sequence[Tuple[float, float, float]]
    radius: float
    tissue: str = "blood"
    wall: float = 0.0  # wall thickness (bowel), painted as bowel_wall
    lumen: str = ""  # tissue of the lumen ("gas", "bowel_fluid"): inside the wall, or within lumen_radius
    gas_fraction: float = 0.0  # anterior (non-dependent) part of a bowel lumen holding gas
    lumen_radius: float = 0.0  # for a tube without wall: radius of its lumen (trachea, oesophagus)

    def bbox(self):
        p = np.asarray(self.points, float)
        return p.min(axis=0) - self.radius, p.max(axis=0) + self.radius

    def paint(self, ctx: _Ctx, within=None) -> None:
        lo, hi = self.bbox()
        idx = ctx.sel(lo, hi, within)
        if idx is None:
            return
        x, y, z = ctx.xyz(idx)
        d2 = _polyline_dist2(x, y, z, self.points)
        inside = d2 <= self.radius**2
        if self.wall > 0:
            ctx.paint(idx, inside, "bowel_wall")
            core = d2 <= (self.radius - self.wall) ** 2
            ctx.paint(idx, core, self.lumen or self.tissue)
            if self.gas_fraction > 0:
                # gas floats anteriorly (+y) in a supine patient: the front part of the lumen
                p = np.asarray(self.points, np.float32)
                cy = np.interp(z, np.sort(p[:, 2]), p[np.argsort(p[:, 2]), 1]) if np.ptp(p[:, 2]) > 0 else p[0, 1]
                level = self.radius - self.wall - 2 * (self.radius - self.wall) * self.gas_fraction
                ctx.paint(idx, core & (y - cy > level), "gas")
        else:
            ctx.paint(idx, inside, self.tissue)
            if self.lumen and self.lumen_radius > 0:
                ctx.paint(idx, d2 <= self.lumen_radius**2, self.lumen)
        if self.name:
            ctx.mark(self.name, idx, inside)


# -- case anatomy --------------------------------------------------------------------------------------------


@dataclass
class LesionSpec:
    """A metastasis in the target vertebra, in its local frame (mm)."""

    kind: str  # "lytic", "blastic" or "mixed"
    centre: Tuple[float, float, float]  # local (u, v, w)
    radii: Tuple[float, float, float]
    parts: Tuple[int, ...]  # vertebra parts it may occupy
    roughness: float = 0.15
    seed: int = 0


@dataclass
class Habitus:
    """Body outline and region (neck, chest, abdomen, pelvis)."""

    region: str
    centre: Tuple[float, float]  # outline centre (x, y)
    semi_axes: Tuple[float, float]
    power: float
    back_y: float  # the back lies flat on the couch here
    fat_mm: float
    muscle_mm: float


@dataclass
class Anatomy:
    """A synthetic patient around one target level."""

    target: str
    column: sp.Column
    habitus: Habitus
    lesion: LesionSpec
    organs: List[Tube] = field(default_factory=list)
    seed: int = 0

    def __post_init__(self) -> None:
        self._marrow = WaveField.make(self.seed * 7 + 1, 10, (2.5, 6.0))
        self._texture = WaveField.make(self.seed * 7 + 2, 8, (6.0, 25.0))
        self._lesion_mix = WaveField.make(self.seed * 7 + 3, 6, (5.0, 9.0))
        self._lesion_shape = WaveField.make(self.lesion.seed, 5, (1.2, 2.5))  # on the unit sphere
        self.elements = list(self.column.vertebrae) + list(self.column.sacrum)
        self.target_element = self.column.by_level()[self.target]

    # -- public -------------------------------------------------------------------------------------------
    def sample(self, x, y, z, record: bool = False):
        """Tissue class (uint8) and cancellous HU at RAS points; with ``record`` also the structure masks
        and the target vertebra's parts. Returns (tissue, bone_hu, structures, parts)."""
        x = np.asarray(x, np.float32).ravel()
        y = np.asarray(y, np.float32).ravel()
        z = np.asarray(z, np.float32).ravel()
        ctx = _Ctx(x, y, z, record)
        self._paint_couch(ctx)
        self._paint_body(ctx)
        getattr(self, f"_paint_{self.habitus.region}")(ctx)
        for organ in self.organs:
            organ.paint(ctx)
        self._paint_spine(ctx)
        return ctx.tissue, ctx.bone_hu, ctx.structures, ctx.part

    def lesion_mask_local(self, u, v, w) -> np.ndarray:
        """The lesion's shape (before clipping to bone) at local points of the target vertebra."""
        ls = self.lesion
        qu = (u - ls.centre[0]) / ls.radii[0]
        qv = (v - ls.centre[1]) / ls.radii[1]
        qw = (w - ls.centre[2]) / ls.radii[2]
        r = np.sqrt(qu * qu + qv * qv + qw * qw) + 1e-6
        bump = self._lesion_shape(qu / r, qv / r, qw / r)
        return r <= 1.0 + ls.roughness * bump

    # -- couch and body outline --------------------------------------------------------------------------
    def _paint_couch(self, ctx: _Ctx) -> None:
        top = self.habitus.back_y - 1.0
        idx = ctx.sel((-250, top - 22, -1e4), (250, top, 1e4))
        if idx is None:
            return
        _, y, _ = ctx.xyz(idx)
        ctx.paint(idx, None, "couch_foam")
        ctx.paint(idx, (y > top - 2.0) | (y < top - 20.0), "couch_shell")

    def _outline(self, x, y, grow: float = 0.0):
        h = self.habitus
        a, b = h.semi_axes[0] + grow, h.semi_axes[1] + grow
        return _superellipse(x, y, h.centre[0], h.centre[1], a, b, h.power) & (y >= h.back_y - grow)

    def _paint_body(self, ctx: _Ctx) -> None:
        h = self.habitus
        a, b = h.semi_axes
        lo = (h.centre[0] - a, h.back_y, -1e4)
        hi = (h.centre[0] + a, h.centre[1] + b, 1e4)
        idx = ctx.sel(lo, hi)
        if idx is None:
            return
        x, y, z = ctx.xyz(idx)
        body = self._outline(x, y)
        ctx.paint(idx, body, "fat")
        ctx.mark("Body", idx, body)
        muscle = self._outline(x, y, -h.fat_mm)
        ctx.paint(idx, muscle, "muscle")
        inner = self._outline(x, y, -h.fat_mm - h.muscle_mm)
        ctx.paint(idx, inner, "fat")
        if h.region in ("abdomen", "pelvis"):
            # strands in the visceral fat (mesentery)
            sub = idx[inner]
            t = self._texture(*ctx.xyz(sub))
            ctx.paint(sub, t > 1.7, "soft")

    # -- regions -----------------------------------------------------------------------------------------
    def _paint_neck(self, ctx: _Ctx) -> None:
        # deep muscles fill the neck behind the visceral space; sternocleidomastoid, longus colli, thyroid
        ctx.se(0, -2, 46, 40, 2.2, "muscle")
        ctx.se(0, 30, 30, 22, 2.0, "fat")
        for sign in (-1, 1):
            ctx.se(sign * 38, 32, 9, 16, 2, "muscle")
            ctx.se(sign * 8, 10.5, 5.5, 3.5, 2, "muscle")
            ctx.se(sign * 15, 36, 7, 10, 2, "thyroid", zhi=8.0)
        # midline fat plane between the posterior neck muscles (ligamentum nuchae)
        ctx.shape((-1.5, -60, -1e4), (1.5, -28, 1e4), lambda x, y, z: np.ones(x.shape, bool), "fat")

    def _paint_chest(self, ctx: _Ctx) -> None:
        h = self.habitus
        cx, cy = h.centre
        a, b = h.semi_axes
        grow = -(h.fat_mm + h.muscle_mm + 7.0)

        def cavity_of(x, y, z):
            c = _superellipse(x, y, cx, cy, a + grow, b + grow, 2.3) & (y >= h.back_y + 26)
            # the spine and paravertebral muscles indent the cavity posteriorly
            c &= ~_superellipse(x, y, 0, -30, 24, 40, 2.0)
            return c & ~((np.abs(x) < 60) & (y < -28))

        idx, cavity = ctx.shape(
            (cx - a - grow, cy - b - grow, -1e4), (cx + a + grow, cy + b + grow, 1e4), cavity_of, "lung"
        )
        if idx is None:
            return
        lung = idx[cavity]
        t = self._texture(*(c * 2.5 for c in ctx.xyz(lung)))  # lung vessels: thin strands
        ctx.paint(lung, np.abs(t) < 0.05, "soft")
        # mediastinum: fat with the heart, great vessels and oesophagus (organs painted later)
        ctx.se(-6, 45, 24, 44, 2.5, "fat", extra=lambda x, y, z: (y > 4) & cavity_of(x, y, z))
        heart = ((-18, 80, -25), (57, 41, 110))
        ctx.shape(
            np.subtract(heart[0], heart[1]),
            np.add(heart[0], heart[1]),
            lambda x, y, z: _ellipsoid(x, y, z, *heart) & cavity_of(x, y, z),
            "fat",
        )
        inner = ((-18, 80, -25), (53, 37, 106))
        ctx.shape(
            np.subtract(inner[0], inner[1]),
            np.add(inner[0], inner[1]),
            lambda x, y, z: _ellipsoid(x, y, z, *inner) & cavity_of(x, y, z),
            "heart",
            "Heart",
        )
        # sternum
        y0 = cy + b + grow
        ctx.shape((-15, y0 + 2, -1e4), (15, y0 + 14, 1e4), lambda x, y, z: np.ones(x.shape, bool), "cortical")
        idx, m = ctx.shape(
            (-13, y0 + 4, -1e4), (13, y0 + 12, 1e4), lambda x, y, z: np.ones(x.shape, bool), "cancellous"
        )
        if idx is not None:
            ctx.bone_hu[idx] = 200.0
        self._paraspinal(ctx)
        self._ribs(ctx)

    def _paint_abdomen(self, ctx: _Ctx) -> None:
        h = self.habitus
        # psoas (growing caudally), quadratus lumborum, abdominal wall (rectus)
        for sign in (-1, 1):

            def psoas(x, y, z, sign=sign):
                r = 10.0 + 0.09 * np.clip(40 - z, 0, None)
                return _superellipse(x, y, sign * (24 + 0.5 * r), -4, r, r * 0.9, 2)

            ctx.shape((sign * 40 - 30, -30, -1e4), (sign * 40 + 30, 25, 1e4), psoas, "muscle")
            ctx.se(sign * 56, -34, 16, 9, 2, "muscle")
            ctx.se(sign * 36, h.centre[1] + h.semi_axes[1] - h.fat_mm - 6, 34, 7, 2, "muscle")
        self._paraspinal(ctx)
        inner_of = lambda x, y: self._outline(x, y, -h.fat_mm - h.muscle_mm)  # noqa: E731
        liver = ((92, 10, 95), (62, 62, 80))
        ctx.shape(
            np.subtract(liver[0], liver[1]),
            np.add(liver[0], liver[1]),
            lambda x, y, z: _ellipsoid(x, y, z, *liver) & inner_of(x, y),
            "liver",
        )
        for sign, name, cz in ((-1, "Kidney_L", 12.0), (1, "Kidney_R", -4.0)):
            c = (sign * 64, -14, cz)
            idx = ctx.sel((c[0] - 40, c[1] - 35, c[2] - 55), (c[0] + 40, c[1] + 35, c[2] + 55))
            if idx is None:
                continue
            x, y, z = ctx.xyz(idx)
            # lower pole more lateral and anterior: tilt the long axis
            xr = x - c[0] - sign * 0.18 * (c[2] - z)
            yr = y - c[1] + 0.12 * (c[2] - z)
            kid = (xr / 24) ** 2 + (yr / 21) ** 2 + ((z - c[2]) / 52) ** 2 <= 1
            ctx.paint(idx, kid, "kidney")
            sinus = ((xr + sign * 12) / 9) ** 2 + ((yr - 4) / 7) ** 2 + ((z - c[2]) / 24) ** 2 <= 1
            ctx.paint(idx, sinus & kid, "fat")
            ctx.mark(name, idx, kid)

    def _paint_pelvis(self, ctx: _Ctx) -> None:
        h = self.habitus
        inner_of = lambda x, y: self._outline(x, y, -h.fat_mm - h.muscle_mm)  # noqa: E731
        under_skin = lambda x, y: self._outline(x, y, -h.fat_mm)  # noqa: E731
        for sign in (-1, 1):
            # gluteus maximus behind the ilium and sacrum, gluteus medius lateral to the wing
            ctx.se(
                sign * 78,
                -52,
                62,
                24,
                2,
                "muscle",
                zhi=30,
                extra=lambda x, y, z: (z < 30 - 0.2 * np.abs(x)) & under_skin(x, y),
            )
            ctx.se(sign * 125, -5, 24, 42, 2, "muscle", zhi=40)
            # psoas and iliacus along the pelvic brim
            ctx.shape(
                (sign * 60 - 35, 5, -1e4),
                (sign * 60 + 35, 40, 1e4),
                lambda x, y, z, s=sign: _superellipse(x, y, s * (52 + 0.15 * np.clip(-z, 0, None)), 22, 15, 14, 2),
                "muscle",
            )
            ctx.se(sign * 88, 25, 18, 30, 2, "muscle", zhi=45, extra=lambda x, y, z: inner_of(x, y))
            # piriformis through the greater sciatic notch
            p0, p1 = (sign * 30, -18, -40), (sign * 110, -36, -58)
            ctx.shape(
                np.minimum(p0, p1) - 10,
                np.maximum(p0, p1) + 10,
                lambda x, y, z, a=p0, b=p1: _seg_dist2(x, y, z, a, b) <= 100,
                "muscle",
            )
        self._paraspinal(ctx, pelvis=True)
        self._ilium(ctx)

    def _paraspinal(self, ctx, pelvis: bool = False) -> None:
        """Erector spinae and multifidus: two large masses behind the laminae and transverse processes."""
        h = self.habitus
        back = h.back_y
        e = self.target_element
        v_post = -40.0 if isinstance(e, sp.SacralSegment) else e.canal_v - e.spec.canal_d / 2
        top = v_post + 2
        cy = (top + back + h.fat_mm) / 2
        ry = (top - back - h.fat_mm) / 2 + 2
        under_skin = lambda x, y: self._outline(x, y, -h.fat_mm)  # noqa: E731
        for sign in (-1, 1):
            rx = 24.0 if h.region != "neck" else 20.0

            def extra(x, y, z):
                m = under_skin(x, y)
                return m & (z > -10 - 0.6 * np.abs(x)) if pelvis else m

            ctx.se(sign * (rx + 4), cy, rx, ry, 2.2, "muscle", extra=extra)
        ctx.shape((-1.2, back + h.fat_mm, -1e4), (1.2, top - 6, 1e4), lambda x, y, z: np.ones(x.shape, bool), "fat")

    def _ribs(self, ctx: _Ctx) -> None:
        """A rib pair for every thoracic vertebra: neck from the body to the transverse process, then an
        arc in the chest wall dropping ~55 mm towards the costal cartilage."""
        h = self.habitus
        cx, cy = h.centre
        ar = h.semi_axes[0] - h.fat_mm - h.muscle_mm - 3.0
        br = h.semi_axes[1] - h.fat_mm - h.muscle_mm - 3.0
        ribs = [v for v in self.column.vertebrae if v.rib]
        for v in ribs:
            s = v.spec
            oz = v.frame.origin[2] + 3.0
            drop = 85.0 if v.level not in ("T11", "T12") else 15.0
            idx = ctx.sel((-ar - 8, -80, oz - drop - 12), (ar + 8, cy + br + 8, oz + 12))
            if idx is None:
                continue
            x, y, z = ctx.xyz(idx)
            # angle around the chest from the posterior midline (0) to the anterior midline (pi)
            phi = np.arctan2(np.abs(x - cx) / ar, -(y - cy) / br)
            rho = np.sqrt(((x - cx) / ar) ** 2 + ((y - cy) / br) ** 2)
            radial = (rho - 1.0) * (ar + br) / 2
            phi0, phi1 = 0.45, (2.75 if drop > 20 else 1.6)
            frac = np.clip((phi - phi0) / (phi1 - phi0), 0, 1)
            zc = oz - drop * frac**1.5
            arc = (phi >= phi0) & (phi <= phi1) & (np.abs(radial) <= 3.2) & (np.abs(z - zc) <= 6.0)
            marrow = arc & (np.abs(radial) <= 1.8) & (np.abs(z - zc) <= 4.6)
            cart = arc & (phi > phi1 - 0.3) if drop > 20 else np.zeros_like(arc)
            # neck: body side -> transverse process tip -> start of the arc
            tip_u = s.tp_reach - 2
            vf = v.canal_v - 0.25 * s.canal_d
            u0 = s.canal_w / 2 + s.pedicle_w * 0.8
            tip_v = vf + 1 - s.tp_back * (s.tp_reach - u0) + 4
            neck = np.zeros(x.shape, bool)
            neck_m = np.zeros(x.shape, bool)
            for sign in (-1, 1):
                p_head = v.frame.to_ras([sign * (s.body_w / 2 + 2)], [-s.body_d / 2 + 5], [s.body_h / 2 - 2])[0]
                p_tip = v.frame.to_ras([sign * tip_u], [tip_v], [0.0])[0]
                p_arc = np.array([cx + sign * ar * np.sin(phi0), cy - br * np.cos(phi0), oz])
                d2 = _polyline_dist2(x, y, z, [p_head, p_tip, p_arc])
                neck |= d2 <= 4.2**2
                neck_m |= d2 <= 2.8**2
            bone = arc | neck
            ctx.paint(idx, bone, "cortical")
            ctx.paint(idx, (marrow | neck_m), "cancellous")
            ctx.bone_hu[idx[marrow | neck_m]] = 190.0
            ctx.paint(idx, cart, "cartilage")

    def _ilium(self, ctx) -> None:
        """Iliac bones: the thick posterior ilium beside the sacrum (sacro-iliac joint, ending at the
        greater sciatic notch below) and the thin wing sweeping anterolaterally up to the crest."""
        for sign in (-1, 1):
            # (point, radius) along the ilium's axial centreline, posterior (PSIS) to anterior (ASIS)
            post = [((sign * 50.0, -47.0), 9.0), ((sign * 67.5, -14.0), 9.5), ((sign * 82.0, 8.0), 6.0)]
            wing = [((sign * 82.0, 8.0), 6.0), ((sign * 106.0, 32.0), 4.5), ((sign * 121.0, 62.0), 4.0)]
            for chain, zlo in ((post, -42.0), (wing, -95.0)):
                pts = np.array([p for p, _ in chain])
                lo = (pts[:, 0].min() - 10, pts[:, 1].min() - 10, zlo)
                hi = (pts[:, 0].max() + 10, pts[:, 1].max() + 10, 45.0)
                idx = ctx.sel(lo, hi)
                if idx is None:
                    continue
                x, y, z = ctx.xyz(idx)
                best = np.full(x.shape, np.inf, np.float32)
                for (p0, r0), (p1, r1) in zip(chain[:-1], chain[1:]):
                    d = np.array(p1) - np.array(p0)
                    t = np.clip(((x - p0[0]) * d[0] + (y - p0[1]) * d[1]) / float(d @ d), 0, 1)
                    dist = np.hypot(x - p0[0] - t * d[0], y - p0[1] - t * d[1]) - (r0 + t * (r1 - r0))
                    best = np.minimum(best, dist)
                zhi = 45.0 - 0.2 * np.clip(np.abs(x) - 90, 0, None)
                band = (best <= 0) & (z < zhi)
                core = band & (best <= -1.4)
                ctx.paint(idx, band, "cortical")
                ctx.paint(idx, core, "cancellous")
                ctx.bone_hu[idx[core]] = 210.0

    # -- spine ------------------------------------------------------------------------------------------------
    def _paint_spine(self, ctx: _Ctx) -> None:
        elems = self.elements
        lo, hi = sp.union_reach(elems, 2.0)
        spine_idx = ctx.sel(lo, hi)
        if spine_idx is None:
            return
        col = self.column
        by_level = col.by_level()
        conus = by_level.get(col.conus_level)
        conus_z = None
        if isinstance(conus, sp.Vertebra):
            s = conus.spec
            conus_z = conus.frame.to_ras([0], [conus.canal_v], [-s.body_h / 2 - s.disc_below / 2])[0]
        # local coordinates of the points near each element, computed once
        local = {}
        for e in elems:
            c = np.array(e.frame.origin)
            idx = ctx.sel(c - e.reach, c + e.reach, spine_idx)
            if idx is not None:
                x, y, z = ctx.xyz(idx)
                local[e.level] = (idx, x, y, z) + tuple(e.frame.to_local(x, y, z))
        # discs
        for upper, lower in zip(elems[:-1], elems[1:]):
            if isinstance(upper, sp.SacralSegment) or upper.level not in local:
                continue
            idx, x, y, z = local[upper.level][:4]
            disc, nucleus = sp.disc_between(upper, lower, x, y, z)
            ctx.paint(idx, disc, "annulus")
            ctx.paint(idx, nucleus, "nucleus")
        # bones
        target = self.target_element
        for e in elems:
            if e.level not in local:
                continue
            idx, x, y, z, u, v, w = local[e.level]
            outer = e.parts(u, v, w)
            bone = outer > 0
            if not bone.any():
                continue
            sub = np.flatnonzero(bone)
            inner = e.parts(u[sub], v[sub], w[sub], shrink=e.spec.cortex if isinstance(e, sp.Vertebra) else e.cortex)
            core = np.zeros(bone.shape, bool)
            core[sub] = inner > 0
            ctx.paint(idx, bone, "cortical")
            ctx.paint(idx, core, "cancellous")
            hu = e.spec.cancellous_hu if isinstance(e, sp.Vertebra) else e.cancellous_hu
            ci = np.flatnonzero(core)
            ctx.bone_hu[idx[ci]] = hu + 45.0 * self._marrow(x[ci], y[ci], z[ci])
            if isinstance(e, sp.SacralSegment) and e.index > 1:
                # vestigial disc between fused segments
                line = core & (np.abs(w - e.height / 2 - 0.5) < 0.9) & (outer == sp.SAC_BODY)
                ctx.paint(idx, line, "cartilage")
            if e is target and ctx.record:
                ctx.part[idx[bone]] = outer[bone]
            if isinstance(e, sp.Vertebra) and (e.has_vertebral_artery or e.level == "C7"):
                lo_w, hi_w = e.segment_w
                for sign in (-1, 1):
                    fu, fv = sign * (e.spec.body_w / 2 + 4.0), -0.3 * e.spec.body_d
                    art = ((u - fu) ** 2 + (v - fv) ** 2 <= 2.3**2) & (w >= lo_w - 1) & (w <= hi_w + 1)
                    if e.level == "C7":  # the artery runs in front of C7's transverse process
                        art &= outer == 0
                    ctx.paint(idx, art, "blood")
        # canal contents
        sac_tip = by_level.get(col.sac_end)
        for e in elems:
            if e.level not in local:
                continue
            idx, x, y, z, u, v, w = local[e.level]
            c = np.array(e.frame.origin)
            canal = e.canal(u, v, w)
            if isinstance(e, sp.SacralSegment):
                foramina = e.foramina(u, v, w) & ~canal
                ctx.paint(idx, foramina, "fat")
                fi = np.flatnonzero(foramina)
                nerve = np.zeros(foramina.shape, bool)
                nerve[fi] = self._marrow(x[fi], y[fi], z[fi]) > 0.5
                ctx.paint(idx, nerve, "nerve")
                ctx.mark("SacralForamina", idx, foramina)
                ctx.paint(idx, canal, "epidural_fat")
                ctx.mark("SacralCanal", idx, canal)
                if sac_tip is not None:
                    tip_w = float((np.array(sac_tip.frame.origin) - c) @ e.frame.axes_ras[:, 2])
                    sac = e.sac(u, v, w, tip_w)
                    ctx.paint(idx, sac, "csf")
                    ctx.mark("ThecalSac", idx, sac)
                    self._roots(ctx, idx, x, y, z, sac)
                continue
            ctx.paint(idx, canal, "epidural_fat")
            ctx.mark("SpinalCanal", idx, canal)
            sac = e.sac(u, v, w)
            ctx.paint(idx, sac, "csf")
            ctx.mark("ThecalSac", idx, sac)
            conus_w = None if conus_z is None else float((conus_z - c) @ e.frame.axes_ras[:, 2])
            cord = e.cord(u, v, w, conus_w)
            ctx.paint(idx, cord, "cord")
            ctx.mark("SpinalCord", idx, cord)
            if e.spec.cord_w <= 0 or (conus_w is not None and conus_w > -e.spec.body_h):
                self._roots(ctx, idx, x, y, z, sac & ~cord)  # cauda equina
        if ctx.record:
            self._registration_roi(ctx, local)
        self._paint_lesion(ctx, local.get(target.level))

    def _roots(self, ctx, idx, x, y, z, sac) -> None:
        """Nerve roots of the cauda equina: thin strands inside the sac (seen on T2 MR)."""
        si = np.flatnonzero(sac)
        roots = np.zeros(sac.shape, bool)
        roots[si] = self._marrow(x[si] * 1.7, y[si] * 1.7, z[si] * 0.2) > 1.2
        ctx.paint(idx, roots, "nerve")

    def _registration_roi(self, ctx, local) -> None:
        """Target and one element above and below, each as a box in its own frame."""
        for e in self.column.neighbours(self.target, 1):
            if e.level not in local:
                continue
            idx, _, _, _, u, v, w = local[e.level]
            if isinstance(e, sp.Vertebra):
                s = e.spec
                back = e.canal_v - s.canal_d / 2 - s.lamina_t - 0.6 * s.sp_len
                box = (np.abs(u) <= s.tp_reach + 4) & (v <= s.body_d / 2 + 6) & (v >= back)
            else:
                box = (np.abs(u) <= e.ala + 4) & (v <= e.body_d / 2 + 6) & (v >= e.canal_v - e.canal_d / 2 - 12)
            lo_w, hi_w = e.segment_w
            box &= (w >= lo_w - 2) & (w <= hi_w + 2)
            ctx.mark("_registration_roi", idx, box)

    def _paint_lesion(self, ctx: _Ctx, local) -> None:
        if local is None:
            return
        e = self.target_element
        idx, x, y, z, u, v, w = local
        parts = e.parts(u, v, w)
        allowed = np.isin(parts, np.array(self.lesion.parts, np.int8))
        gtv = self.lesion_mask_local(u, v, w) & allowed
        kind = self.lesion.kind
        if kind == "lytic":
            ctx.paint(idx, gtv, "lytic")
        elif kind == "blastic":
            ctx.paint(idx, gtv, "blastic")
        else:
            gi = np.flatnonzero(gtv)
            blastic = np.zeros(gtv.shape, bool)
            blastic[gi] = self._lesion_mix(x[gi], y[gi], z[gi]) > 0.35
            ctx.paint(idx, gtv & ~blastic, "lytic")
            ctx.paint(idx, blastic, "blastic")
        ctx.mark("GTV", idx, gtv)


def lesion_centroid_hint(anatomy: Anatomy) -> np.ndarray:
    """RAS position of the lesion's nominal centre."""
    ls = anatomy.lesion
    return anatomy.target_element.frame.to_ras([ls.centre[0]], [ls.centre[1]], [ls.centre[2]])[0]
