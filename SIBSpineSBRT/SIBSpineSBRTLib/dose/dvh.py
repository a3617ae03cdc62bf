"""Exact DVH metrics from volume-weighted dose samples (no histogram bins).

How a structure is sampled
--------------------------
A structure is cut into small boxes ("samples"), each carrying its volume:

* a labelmap voxel is a cube of tissue, split into ``n_i x n_j x n_k`` equal sub-cubes
  (``choose_supersampling`` picks n per structure and dose grid);
* a planar-contour structure (``contours.ContourStructure``) is cut into boxes whose in-plane length
  follows the polygon edges exactly (fractional occupancy), see that module.

The dose at a box centre is the trilinear interpolation of the dose grid (``DoseGrid``), and so is its
gradient g. Inside the box the dose is taken as linear, d(x) = d_c + g.(x - c), so the box's volume is
spread over its dose range exactly: with box edges h_m along unit directions e_m, the dose is
d_c + sum_m a_m U_m with U_m independent and uniform on [-1, 1] and half-widths a_m = |g.e_m| h_m / 2.
The fraction of the box at or above a dose D is then a piecewise cubic in D (the volume of a box cut by a
plane), and V(D) below is the sum of those. For a dose linear across each box this is exact: a labelmap
in a linear field gives the same metrics at any supersampling, with no staircase from point samples
(point samples err by up to half a sub-cube's dose range, e.g. 0.4-0.6 Gy for a voxel-centre DVH at
1 Gy/mm). For a curved dose the error is of second order in the box size, which the supersampling keeps
small. This was chosen over adaptive supersampling because it removes the staircase everywhere at no
extra samples. For numerical stability each half-width is floored at 1e-4 of their sum (plus 1e-9 Gy),
taken from the largest one: the box's dose range is unchanged and no dose moves by more than 2e-4 of it.

Metric definitions (doses in Gy, volumes in cc)
-----------------------------------------------
V(D) is the volume (cc) of the part of the structure inside the dose grid that receives at least D; it is
continuous and non-increasing in D. ``Vin`` = V(0) is that volume.

* ``Dx%`` / ``Dxcc``: the minimum dose received by the hottest x (percent of ``Vin``, or cc):
  D = sup{D : V(D) >= x}, so V(D) = x where V is continuous. It is solved on the exact V (to about
  1e-9 Gy), not read from bins. D0% = Dmax, D100% = Dmin. Dxcc with x larger than ``Vin`` is not defined
  (DoseError).
* ``Dmax`` / ``Dmin``: the top / bottom of V, i.e. the highest / lowest dose of any box's range. Exact for
  a labelmap in a linear field; in a curved dose the linear extrapolation to a box corner differs from
  the trilinear field by a second-order amount (at most about 0.15 Gy in a 3 Gy/mm SBRT fall-off on a
  2.5 mm dose grid with the default supersampling).
* ``Dmean``: volume-weighted mean dose, (1/Vin) * integral of dose over the structure (exact: each box's
  dose range is symmetric about its centre dose).
* ``VxGy``: V(x) in cc; ``VxGy%``: 100 V(x) / Vin.
* ``Volume``: the whole structure's volume in cc (the part outside the dose grid included).

A ``DVH`` built without spreads holds point samples: V(D) is then the volume of the samples with dose >= D
and the same definitions apply (Dx is the dose of the sample at which the running volume reaches x).

Samples whose centre lies outside the dose grid get no dose: the metrics describe the part inside, and
``fraction_outside`` says how much was left out (``compute_dvh`` warns when it is not zero).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Iterable, Optional, Tuple

import numpy as np

from ..geometry.masks import Mask
from ..warnings import DoseWarning
from .grid import DoseError, DoseGrid

_METRIC_RE = re.compile(r"^(?:(D)(\d+(?:\.\d+)?)(%|cc)|(V)(\d+(?:\.\d+)?)Gy(%?)|(Dmean|Dmax|Dmin|Volume))$")

#: Relative and absolute floors of each half-width (see the module docstring).
_SPREAD_REL_FLOOR = 1e-4
_SPREAD_ABS_FLOOR = 1e-9
#: Rows of (samples x levels) evaluated at once.
_BLOCK = 1 << 20


@dataclass(frozen=True)
class MetricSpec:
    """A parsed metric name such as "D2%", "D0.03cc", "V30Gy", "V30Gy%" or "Dmean"."""

    name: str
    kind: str  # "D", "V", "Dmean", "Dmax", "Dmin" or "Volume"
    value: Optional[float] = None  # x in Dx / Vx
    relative: bool = False  # Dx%: x in percent; VxGy%: result in percent

    @property
    def unit(self) -> str:
        if self.kind == "V":
            return "%" if self.relative else "cc"
        if self.kind == "Volume":
            return "cc"
        return "Gy"


def parse_metric(name: str) -> MetricSpec:
    m = _METRIC_RE.match(str(name).strip())
    if not m:
        raise ValueError(
            f"Unknown DVH metric '{name}'. Use Dx% (e.g. D2%), Dxcc (e.g. D0.03cc), VxGy (cc), VxGy% or "
            "Dmean, Dmax, Dmin, Volume."
        )
    if m.group(1):
        return MetricSpec(name, "D", float(m.group(2)), m.group(3) == "%")
    if m.group(4):
        return MetricSpec(name, "V", float(m.group(5)), m.group(6) == "%")
    return MetricSpec(name, m.group(7))


# -- the dose distribution inside one box ---------------------------------------------------------------


def _floor_spreads(a: np.ndarray) -> np.ndarray:
    """Half-widths (float64 copy) floored for stability; the largest gives back what the floors added, so
    each box's dose range (and so Dmax and Dmin) is unchanged."""
    a = np.array(a, dtype=np.float64)
    floor = _SPREAD_REL_FLOOR * a.sum(axis=1) + _SPREAD_ABS_FLOOR
    need = np.nonzero((a < floor[:, None]).any(axis=1))[0]
    if len(need):
        sub, f = a[need], floor[need]
        b = np.maximum(sub, f[:, None])
        rows = np.arange(len(need))
        big = np.argmax(sub, axis=1)
        largest = b[rows, big] - (b - sub).sum(axis=1)
        ok = largest >= f
        b[rows[ok], big[ok]] = largest[ok]
        a[need] = b
    return a


def _fraction_at_or_above(d: np.ndarray, a: np.ndarray, levels: np.ndarray, density: bool = False):
    """Fraction of each box receiving at least a dose level (and, with ``density``, also the box's dose
    density there, per Gy, as a second result).

    ``d`` (P,) centre doses, ``a`` (P, 3) floored half-widths; ``levels`` (P,) gives one level per box and
    returns (P,), ``levels`` (1, K) gives every level to every box and returns (P, K).

    The fraction is P(sum_m a_m U_m <= d - D). With y_m = a_m (U_m + 1) in [0, w_m], w_m = 2 a_m, it is
    the volume of {y in the box : sum y <= t}, t = d - D + sum a, which is
    sum over the box corners s of (-1)^|s| (t - w.s)_+^3 / 6, divided by w1 w2 w3 (its derivative in t,
    with squares and / 2, is the density). It is evaluated on the half t <= (sum w) / 2 of the symmetric
    distribution, where the terms are smallest.
    """
    total = 2.0 * a.sum(axis=1)
    p = 2.0 * a / total[:, None]
    if levels.ndim == 2:
        d, total, p = d[:, None], total[:, None], p[:, None, :]
    return _fraction_normalised((d - levels) / total + 0.5, p[..., 0], p[..., 1], p[..., 2], total, density)


def _fraction_normalised(x, p1, p2, p3, total, density: bool = False):
    """``_fraction_at_or_above`` for x = (d - D) / (2 sum a) + 1/2 and p_m = a_m / sum a."""
    x = np.clip(x, 0.0, 1.0)
    flip = x > 0.5
    x = np.where(flip, 1.0 - x, x)
    num = x * x * x
    slope = x * x if density else None
    for corner, sign in ((p1, -1.0), (p2, -1.0), (p3, -1.0), (p1 + p2, 1.0), (p1 + p3, 1.0), (p2 + p3, 1.0)):
        t = np.maximum(x - corner, 0.0)
        t2 = t * t
        num += sign * (t2 * t)
        if density:
            slope += sign * t2
    volume = p1 * p2 * p3
    near = np.clip(num / (6.0 * volume), 0.0, 1.0)  # P(sum y <= t) for t on the lower half
    frac = np.where(flip, 1.0 - near, near)
    if not density:
        return frac
    return frac, np.maximum(slope / (2.0 * volume), 0.0) / total


class _SpreadIndex:
    """The samples grouped by half-width (powers of two below the largest), each group sorted by centre
    dose: the boxes whose dose range can reach a level are then found by binary search in each group.
    Half-widths stay in the caller's (N, 3) array and are floored when a window of them is used."""

    n_groups = 12

    def __init__(self, d: np.ndarray, spreads: np.ndarray, w: np.ndarray) -> None:
        # an upper bound of each floored box's total half-width (flooring keeps it, or adds < 3e-9 Gy)
        half = spreads.sum(axis=1, dtype=np.float64) + 3 * _SPREAD_ABS_FLOOR
        group = np.clip(np.floor(np.log2(float(half.max()) / half)), 0, self.n_groups - 1).astype(np.int64)
        order = np.argsort(group, kind="stable")  # d is sorted from high to low already
        self.order, self.spreads = order, spreads
        self.neg = -d[order]  # ascending inside each group
        self.w = w[order]
        self.cum = np.concatenate([[0.0], np.cumsum(self.w)])
        bounds = np.searchsorted(group[order], np.arange(self.n_groups + 1))
        self.groups = [
            (int(s), int(e), float(half[order[s:e]].max())) for s, e in zip(bounds[:-1], bounds[1:]) if e > s
        ]

    def boxes(self, idx) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(centre doses, floored half-widths (n, 3), volumes) of the boxes at positions ``idx``."""
        return -self.neg[idx], _floor_spreads(self.spreads[self.order[idx]]), self.w[idx]

    def _window(self, lo_level: float, hi_level: float):
        """(volume of boxes entirely at or above hi_level, positions of boxes straddling some level)."""
        base = 0.0
        parts = []
        for s, e, h in self.groups:
            i0 = s + int(np.searchsorted(self.neg[s:e], -(hi_level + h), side="right"))
            i1 = s + int(np.searchsorted(self.neg[s:e], -(lo_level - h), side="left"))
            base += self.cum[i0] - self.cum[s]
            if i1 > i0:
                d = -self.neg[i0:i1]
                half = self.spreads[self.order[i0:i1]].sum(axis=1, dtype=np.float64)
                above = d - half >= hi_level
                base += float(self.w[i0:i1][above].sum())
                parts.append(i0 + np.nonzero(~above & (d + half > lo_level))[0])
        idx = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        return base, idx

    def volumes_at(self, levels: np.ndarray) -> np.ndarray:
        """V(D) in cc at each of ``levels`` (1-D)."""
        levels = np.asarray(levels, dtype=np.float64)
        base, idx = self._window(float(levels.min()), float(levels.max()))
        out = np.full(len(levels), base)
        rows = max(1, _BLOCK // max(len(levels), 1))
        for s in range(0, len(idx), rows):
            d, a, w = self.boxes(idx[s : s + rows])
            out += np.einsum("p,pk->k", w, _fraction_at_or_above(d, a, levels[None, :]))
        return out

    def bracket(self, cc: float, lo: float, hi: float) -> Tuple[float, float]:
        """An interval within [lo, hi] that holds sup{D : V(D) >= cc}, from cheap bounds: summed over the
        groups, the point-sample volumes at D + h and at D - h bound V(D) from below and from above."""

        def bound(level: float, sign: float) -> float:
            side = "right" if sign > 0 else "left"
            return sum(
                self.cum[s + int(np.searchsorted(self.neg[s:e], -(level + sign * h), side=side))] - self.cum[s]
                for s, e, h in self.groups
            )

        a_lo, a_hi = lo, hi  # the largest D whose lower bound reaches cc is below the answer
        b_lo, b_hi = lo, hi  # the smallest D whose upper bound is under cc is above it
        while a_hi - a_lo > 1e-4 or b_hi - b_lo > 1e-4:
            mid = 0.5 * (a_lo + a_hi)
            a_lo, a_hi = (mid, a_hi) if bound(mid, 1.0) >= cc else (a_lo, mid)
            mid = 0.5 * (b_lo + b_hi)
            b_lo, b_hi = (b_lo, mid) if bound(mid, -1.0) < cc else (mid, b_hi)
        return a_lo, b_hi

    def solve(self, cc: float, lo: float, hi: float) -> float:
        """sup{D : V(D) >= cc} for 0 < cc < Vin: safeguarded Newton steps on the exact V, using the boxes
        that straddle the bracket (the others are wholly above or below every dose in it)."""
        lo, hi = self.bracket(cc, lo, hi)
        base, idx = self._window(lo, hi)
        d, a, w = self.boxes(idx)
        level = 0.5 * (lo + hi)
        for _ in range(100):
            frac, dens = _fraction_at_or_above(d, a, np.full(len(d), level), density=True)
            v, slope = base + float((w * frac).sum()), float((w * dens).sum())
            if v >= cc:
                lo = level
            else:
                hi = level
            if abs(v - cc) <= 1e-13 * self.cum[-1] or hi - lo <= 1e-10:
                break
            step = level + (v - cc) / slope if slope > 0 else np.nan
            level = step if lo < step < hi else 0.5 * (lo + hi)
        if slope <= 0 and v >= cc:  # V is flat here: the answer is the bottom of the next box above
            bottoms = -self.neg - self.spreads[self.order].sum(axis=1, dtype=np.float64)
            above = bottoms[bottoms > level]
            return float(above.min()) if len(above) else level
        return float(level)


# -- supersampling --------------------------------------------------------------------------------------


def choose_supersampling(
    mask: Mask,
    dose: Optional[DoseGrid] = None,
    max_step_mm: float = 1.0,
    hot_volume_cc: float = 0.03,
    min_hot_samples: int = 200,
    max_samples: int = 2_000_000,
) -> Tuple[int, int, int]:
    """Sub-cubes per voxel along (i, j, k) for a labelmap structure.

    Sub-cubes are at most ``max_step_mm`` wide, and at most half the finest dose-grid spacing when
    ``dose`` is given (so a sub-cube straddles at most one bend of the trilinear dose along each axis).
    The hottest ``hot_volume_cc`` (the D0.03cc volume) must hold at least ``min_hot_samples`` sub-cubes:
    the widest axis is refined (up to 8 per axis) until it does. Huge structures are then coarsened, the
    finest axis first, until they have at most ``max_samples`` samples.
    """
    spacing = np.asarray(mask.geometry.spacing, dtype=float)
    step = float(max_step_mm)
    if dose is not None:
        step = min(step, 0.5 * min(dose.geometry.spacing))
    n = np.maximum(1, np.ceil(spacing / step - 1e-9)).astype(int)
    max_hot_volume = hot_volume_cc * 1000.0 / float(min_hot_samples)  # mm3 per sub-cube
    while np.prod(spacing / n) > max_hot_volume * (1 + 1e-9) and n.max() < 8:
        n[np.argmax(np.where(n < 8, spacing / n, -1.0))] += 1
    count = max(mask.voxel_count, 1)
    while count * int(np.prod(n)) > max_samples and n.max() > 1:
        n[np.argmin(np.where(n > 1, spacing / n, np.inf))] -= 1
    return tuple(int(v) for v in n)


# -- the DVH --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class DVH:
    """Volume-weighted dose samples of one structure, sorted by decreasing centre dose.

    ``doses`` are the samples' centre doses (Gy, descending), ``cum_volume_cc`` their running volume, and
    ``spreads`` (N, 3) the half-widths (Gy) of each sample's linear dose range (see the module docstring);
    without ``spreads`` the samples are points. Metric definitions are in the module docstring.
    """

    structure: str
    doses: np.ndarray
    cum_volume_cc: np.ndarray
    volume_cc: float  # whole structure (inside and outside the dose grid)
    fraction_outside: float
    supersampling: Tuple[int, ...] = (1, 1, 1)
    spreads: Optional[np.ndarray] = None
    sampling: str = ""  # how the structure was sampled, for reports

    def scaled(self, factor: float) -> DVH:
        """The DVH of the same structure under the dose multiplied by ``factor`` (exact: every sample's dose
        and spread scale with it)."""
        if not np.isfinite(factor) or factor <= 0:
            raise DoseError(f"{self.structure}: a dose scale factor must be a finite number > 0; got {factor}.")
        spreads = None if self.spreads is None else np.asarray(self.spreads) * factor
        return DVH(
            self.structure,
            self.doses * factor,
            self.cum_volume_cc,
            self.volume_cc,
            self.fraction_outside,
            self.supersampling,
            spreads,
            self.sampling,
        )

    def __post_init__(self) -> None:
        d = np.asarray(self.doses, dtype=np.float64)
        cum = np.asarray(self.cum_volume_cc, dtype=np.float64)
        if d.ndim != 1 or cum.shape != d.shape or len(d) == 0:
            raise DoseError(f"{self.structure}: a DVH needs one running volume per dose sample, and samples.")
        if np.any(np.diff(d) > 0):
            raise DoseError(f"{self.structure}: DVH doses must be sorted from high to low.")
        weights = np.diff(np.concatenate([[0.0], cum]))
        object.__setattr__(self, "doses", d)
        object.__setattr__(self, "cum_volume_cc", cum)
        object.__setattr__(self, "_mean", float((d * weights).sum() / cum[-1]))
        if self.spreads is None:  # point samples: V(D) is the volume of the samples with dose >= D
            object.__setattr__(self, "_index", None)
            object.__setattr__(self, "_max", float(d[0]))
            object.__setattr__(self, "_min", float(d[-1]))
            return
        a = np.asarray(self.spreads)
        if a.shape != (len(d), 3) or np.any(a < 0):
            raise DoseError(f"{self.structure}: spreads must be (N, 3) half-widths >= 0.")
        half = a.sum(axis=1, dtype=np.float64)  # flooring keeps each box's range (module docstring)
        object.__setattr__(self, "_index", _SpreadIndex(d, a, weights))
        object.__setattr__(self, "_max", float(np.max(d + half)))
        object.__setattr__(self, "_min", float(np.min(d - half)))

    # -- exact V(D) -------------------------------------------------------------------------------------
    @property
    def evaluated_volume_cc(self) -> float:
        """Volume (cc) of the part of the structure inside the dose grid (``Vin``)."""
        return float(self.cum_volume_cc[-1])

    def volumes_at_doses_cc(self, levels) -> np.ndarray:
        """V(D) in cc at each dose of ``levels`` (Gy)."""
        levels = np.atleast_1d(np.asarray(levels, dtype=np.float64))
        if self._index is None:
            n = np.searchsorted(-self.doses, -levels, side="right")  # samples with dose >= level
            return np.where(n > 0, self.cum_volume_cc[np.maximum(n - 1, 0)], 0.0)
        return self._index.volumes_at(levels)

    def volume_at_dose_cc(self, gy: float) -> float:
        """Volume (cc) receiving at least ``gy``: V(gy)."""
        return float(self.volumes_at_doses_cc([float(gy)])[0])

    def dose_at_volume_cc(self, cc: float) -> float:
        """Minimum dose received by the hottest ``cc``: sup{D : V(D) >= cc} (exact, no bins)."""
        total = self.evaluated_volume_cc
        cc = float(cc)
        if cc <= 0:
            return self.max
        if cc > total * (1 + 1e-9):
            raise DoseError(
                f"{self.structure}: D{cc:g}cc is not defined, the structure has only {total:.4g} cc inside the "
                "dose grid."
            )
        if cc >= total:
            return self.min
        if self._index is None:
            idx = int(np.searchsorted(self.cum_volume_cc, cc * (1 - 1e-12), side="left"))
            return float(self.doses[min(idx, len(self.doses) - 1)])
        return self._index.solve(cc, self.min, self.max)

    def dose_at_volume_percent(self, percent: float) -> float:
        """Minimum dose received by the hottest ``percent`` of ``Vin``."""
        if not 0 <= percent <= 100:
            raise DoseError(f"{self.structure}: D{percent:g}% needs 0 <= x <= 100.")
        return self.dose_at_volume_cc(self.evaluated_volume_cc * percent / 100.0)

    @property
    def max(self) -> float:
        """Dmax: the top of the hottest box's dose range."""
        return self._max

    @property
    def min(self) -> float:
        """Dmin: the bottom of the coldest box's dose range."""
        return self._min

    @property
    def mean(self) -> float:
        """Dmean: volume-weighted mean dose (exact: each box's dose range is symmetric about its centre)."""
        return self._mean

    def metric(self, name: str) -> float:
        """Value of a metric named as ``parse_metric`` accepts (definitions in the module docstring)."""
        spec = parse_metric(name)
        if spec.kind == "D":
            return self.dose_at_volume_percent(spec.value) if spec.relative else self.dose_at_volume_cc(spec.value)
        if spec.kind == "V":
            cc = self.volume_at_dose_cc(spec.value)
            return 100.0 * cc / self.evaluated_volume_cc if spec.relative else cc
        if spec.kind == "Volume":
            return self.volume_cc
        return {"Dmean": self.mean, "Dmax": self.max, "Dmin": self.min}[spec.kind]

    def curve(self, step_gy: float = 0.1) -> Tuple[np.ndarray, np.ndarray]:
        """Cumulative DVH for plotting: dose levels 0, step, 2 step, ... (Gy) up to the first level above
        Dmax, and the percent of ``Vin`` receiving at least each level (exact V at every level)."""
        if not step_gy > 0:
            raise ValueError(f"DVH curve step must be > 0 Gy; got {step_gy}.")
        n_levels = int(np.floor(self.max / step_gy)) + 2
        levels = np.arange(n_levels) * step_gy
        if self._index is None:
            return levels, 100.0 * self.volumes_at_doses_cc(levels) / self.evaluated_volume_cc
        ix = self._index
        d = -ix.neg
        half = ix.spreads[ix.order].sum(axis=1, dtype=np.float64)
        lo, hi = d - half, d + half
        # levels k <= floor(lo / step) are fully at or below the box: the whole box counts
        k_full = np.clip(np.floor(lo / step_gy).astype(np.int64), -1, n_levels - 1)
        hist = np.bincount(k_full + 1, weights=ix.w, minlength=n_levels + 1)
        vol = np.cumsum(hist[::-1])[::-1][1:]
        # levels strictly inside (lo, hi) take a fraction of the box
        first = k_full + 1
        last = np.minimum(np.ceil(hi / step_gy).astype(np.int64) - 1, n_levels - 1)
        counts = np.maximum(last - first + 1, 0)
        # boxes sorted by how many levels they straddle: level offset m concerns a prefix of them
        todo = np.nonzero(counts)[0]
        todo = todo[np.argsort(-counts[todo], kind="stable")]
        box_d, box_a, box_w = ix.boxes(todo)
        first, counts = first[todo], counts[todo]
        total = 2.0 * box_a.sum(axis=1)
        p = 2.0 * box_a / total[:, None]
        for m in range(int(counts[0]) if len(counts) else 0):
            n = int(np.searchsorted(-counts, -m, side="left"))  # boxes with more than m levels
            k = first[:n] + m
            x = (box_d[:n] - levels[k]) / total[:n] + 0.5
            frac = _fraction_normalised(x, p[:n, 0], p[:n, 1], p[:n, 2], total[:n])
            vol += np.bincount(k, weights=box_w[:n] * frac, minlength=n_levels)
        return levels, 100.0 * vol / self.evaluated_volume_cc


# -- building a DVH from boxes ------------------------------------------------------------------------
# (small matrix products use einsum: BLAS threads cost more than they save on (n, 3) arrays)

#: A chunk of boxes: (centres (n, 3) in dose-grid index coordinates; edge directions (3, 3), row m = the
#: dose-index displacement of a unit step along the box's axis m; edge lengths (n, 3) or (3,) in those
#: units; volumes (n,) or scalar in cc).
BoxChunk = Tuple[np.ndarray, np.ndarray, np.ndarray, object]


def dvh_from_boxes(
    name: str,
    dose: DoseGrid,
    chunks: Iterable[BoxChunk],
    volume_cc: Optional[float] = None,
    supersampling: Tuple[int, ...] = (1, 1, 1),
    sampling: str = "",
    stacklevel: int = 2,
) -> DVH:
    """DVH of a structure given as boxes (see ``BoxChunk``): trilinear dose and gradient at each centre,
    each box's volume spread over its linear dose range. Warns (DoseWarning) when part of the structure
    lies outside the dose grid; raises DoseError when all of it does."""
    doses, spreads, weights = [], [], []
    total = outside = 0.0
    for centres, edges, lengths, volumes in chunks:
        if len(centres) == 0:
            continue
        d, grad, inside = dose.interpolate_index(centres, gradient=True)
        vol = np.broadcast_to(np.asarray(volumes, dtype=np.float64), d.shape)
        total += float(vol.sum())
        outside += float(vol[~inside].sum())
        a = 0.5 * np.abs(np.einsum("nc,mc->nm", grad[inside], np.asarray(edges, dtype=np.float64)))
        a *= np.broadcast_to(np.asarray(lengths, dtype=np.float64), (len(d), 3))[inside]
        doses.append(d[inside])
        spreads.append(a.astype(np.float32))
        weights.append(vol[inside])
    if total <= 0:
        raise DoseError(f"Structure {name} is empty (no volume): draw or import it before evaluating.")
    fraction_outside = outside / total
    if fraction_outside >= 1.0 or not any(len(d) for d in doses):
        raise DoseError(
            f"Structure {name} lies entirely outside the dose grid {dose.name} ({dose.geometry.describe()}): "
            "the grids do not overlap. Check that the dose belongs to this plan and frame of reference, or "
            "recompute the dose on a grid that covers the structure."
        )
    if fraction_outside > 0:
        warnings.warn(
            f"{100 * fraction_outside:.2f}% of {name} lies outside the dose grid {dose.name}; its metrics cover "
            "only the part inside (Dx% and VxGy% are relative to that part).",
            DoseWarning,
            stacklevel=stacklevel + 1,
        )
    d = np.concatenate(doses)
    order = np.argsort(-d.astype(np.float32))  # fast, nearly sorted; then exact (cheap on sorted data)
    order = order[np.argsort(-d[order], kind="stable")]
    a = np.concatenate(spreads)[order]
    w = np.concatenate(weights)[order]
    volume = float(total if volume_cc is None else volume_cc)
    return DVH(name, d[order], np.cumsum(w), volume, fraction_outside, tuple(supersampling), a, sampling)


def _mask_boxes(mask: Mask, dose: DoseGrid, n: Tuple[int, int, int], max_rows: int = 1 << 19):
    """Sub-cube chunks of a labelmap in the dose grid's index coordinates."""
    m = dose.geometry.ras_to_ijk @ mask.geometry.ijk_to_ras  # mask index -> dose index
    lin, shift = m[:3, :3], m[:3, 3]
    k, j, i = np.nonzero(mask.array)
    offsets = (
        np.stack(np.meshgrid(*[(np.arange(c) + 0.5) / c - 0.5 for c in n], indexing="ij"), axis=-1)
        .reshape(-1, 3)
        .dot(lin.T)
    )
    edges = lin.T  # row m: dose-index step per mask-index step along axis m
    lengths = 1.0 / np.asarray(n, dtype=np.float64)
    sub_volume = mask.geometry.voxel_volume_cc / float(np.prod(n))
    for s in range(0, len(i), max_rows):
        ijk = np.stack([i[s : s + max_rows], j[s : s + max_rows], k[s : s + max_rows]], axis=1).astype(np.float64)
        centres = np.einsum("nc,mc->nm", ijk, lin) + shift
        for off in offsets:
            yield centres + off, edges, lengths, sub_volume


def compute_dvh(structure, dose: DoseGrid, supersampling: Optional[Tuple[int, int, int]] = None) -> DVH:
    """DVH of a structure in a dose grid, on any two grids and orientations.

    ``structure`` is a labelmap ``Mask`` (each voxel a cube of tissue; ``supersampling`` = sub-cubes per
    voxel along i, j, k, chosen by ``choose_supersampling`` when None) or a planar-contour structure
    (``contours.ContourStructure``; ``supersampling`` is then ignored, its own step rules apply).
    """
    if hasattr(structure, "dvh"):  # planar contours and other structure types that sample themselves
        return structure.dvh(dose, stacklevel=3)
    mask = structure
    name = mask.name or "(unnamed structure)"
    if mask.is_empty:
        raise DoseError(f"Structure {name} is empty (no voxels): draw or import it before evaluating.")
    n = tuple(int(v) for v in (supersampling or choose_supersampling(mask, dose)))
    if len(n) != 3 or min(n) < 1:
        raise ValueError(f"Supersampling must be three whole numbers >= 1; got {supersampling}.")
    sampling = f"labelmap, {n[0]}x{n[1]}x{n[2]} sub-cubes per voxel"
    return dvh_from_boxes(name, dose, _mask_boxes(mask, dose, n), mask.volume_cc, n, sampling, stacklevel=3)
