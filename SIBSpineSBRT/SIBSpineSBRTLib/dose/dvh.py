"""Exact DVH metrics from volume-weighted dose samples (no histogram bins).

How a structure is sampled
--------------------------
A structure is cut into boxes ("samples"), each carrying its volume:

* a labelmap voxel is a cube of tissue;
* a planar-contour structure (``contours.ContourStructure``) is cut into boxes whose in-plane length
  follows the polygon edges exactly (fractional occupancy), see that module.

The dose at a box centre is the trilinear interpolation of the dose grid (``DoseGrid``), and so is its
gradient g. Inside the box the dose is taken as linear, d(x) = d_c + g.(x - c), so the box's volume is
spread over its dose range exactly: with box edges h_m along unit directions e_m, the dose is
d_c + sum_m a_m U_m with U_m independent and uniform on [-1, 1] and half-widths a_m = |g.e_m| h_m / 2.
The fraction of the box at or above a dose D is then a piecewise cubic in D (the volume of a box cut by a
plane), and V(D) below is the sum of those. For a dose linear across each box this is exact, whatever
the box's size, with no staircase from point samples (point samples err by up to half a box's dose
range, e.g. 0.4-0.6 Gy for a voxel-centre DVH at 1 Gy/mm). For numerical stability each half-width is
floored at 1e-4 of their sum (plus 1e-9 Gy), taken from the largest one: the box's dose range is
unchanged and no dose moves by more than 2e-4 of it.

The trilinear dose is not linear everywhere, but its shape is known from the grid (``grid.Bends``): it
bends only on the planes of voxel centres, and inside each cell between them it is linear but for
small cross terms (xy, xz, yz, xyz). So the boxes are cut where it bends (adaptive sampling, the default):

1. Every box is cut on the dose grid's outer faces, so that it lies wholly inside or outside the grid,
   and, unless the dose is linear over the structure, on the planes of voxel centres it straddles. Each
   part then lies in one cell, where the linear model misses only the cross terms: zero on average over
   the box, so Dmean is the exact integral of the trilinear dose, and at most the cell's largest cross
   difference times (r_i r_j + r_i r_k + r_j r_k + 2 r_i r_j r_k) anywhere in it (the box's "slack"; r its
   half-extents in grid steps). Boxes oblique to the dose grid cannot be cut on its planes: they are
   halved until none reaches more than a quarter grid step from its centre along a grid axis.
2. The boxes that may hold part of the hottest or the coldest 0.03 cc (given each box's slack) are cut
   finer where their cell has cross terms: a labelmap voxel into ``choose_supersampling``'s sub-cubes (at
   least 200 in 0.03 cc), a contour box into boxes of ``ContourStructure.tail_step_mm``. Then, in up to
   four rounds, the boxes that may hold the highest or the lowest dose (the highest is at least the
   largest top minus slack; fewer boxes qualify as they shrink) are halved while their slack exceeds
   0.02 Gy. Boxes oblique to the grid get the first cut only.

A labelmap in a linear field thus gets one box per voxel (cut only at the edge of the grid), and the
same metrics as with any supersampling. In a steep curved dose (the demo case: an SBRT shell and a
3 Gy/mm cord fall-off on a 2.5 mm grid), with about four boxes per voxel, Dx and Dmean stay within 0.002
Gy of an 8x8x8-sub-cube reference (the former fixed 2x2x3 sub-cubes per voxel: 0.03 Gy), and Dmax and
Dmin within 0.02 Gy of the exact extremes of the trilinear dose over the structure (2x2x3: 0.17 Gy).
With an explicit ``supersampling`` every voxel is cut into that many sub-cubes instead, and nothing else;
so are the voxels of labelmaps over 250 000 voxels (about 300 cc), with ``choose_supersampling``, to bound
time and memory (the tails of a large structure in a dose that bends everywhere can be large).

Metric definitions (doses in Gy, volumes in cc)
-----------------------------------------------
V(D) is the volume (cc) of the part of the structure inside the dose grid that receives at least D; it is
continuous and non-increasing in D. ``Vin`` = V(0) is that volume.

* ``Dx%`` / ``Dxcc``: the minimum dose received by the hottest x (percent of ``Vin``, or cc):
  D = sup{D : V(D) >= x}, so V(D) = x where V is continuous. It is solved on the exact V (to about
  1e-9 Gy), not read from bins. D0% = Dmax, D100% = Dmin. Dxcc with x larger than ``Vin`` is not defined
  (DoseError).
* ``Dmax`` / ``Dmin``: the top / bottom of V, i.e. the highest / lowest dose of any box's range, within
  the bounds below. Exact for a labelmap in a linear field; in a curved dose the linear extrapolation to a
  box corner differs from the trilinear field by the box's cross terms (at most 0.02 Gy for the boxes that
  may hold the extremes, when the grids are parallel), and the bounds take the exact corner doses instead.
* ``Dmean``: volume-weighted mean dose, (1/Vin) * integral of dose over the structure (each box's dose
  range is symmetric about its centre dose; exact for boxes cut on the planes of voxel centres).
* ``VxGy``: V(x) in cc; ``VxGy%``: 100 V(x) / Vin.
* ``DCxcc`` (critical volume): the highest dose received by the coldest x cc, i.e. D(Vin - x)cc.
* ``Volume``: the whole structure's volume in cc (the part outside the dose grid included).

A ``DVH`` built without spreads holds point samples: V(D) is then the volume of the samples with dose >= D
and the same definitions apply (Dx is the dose of the sample at which the running volume reaches x).

Samples whose centre lies outside the dose grid get no dose: the metrics describe the part inside, and
``fraction_outside`` says how much was left out (``compute_dvh`` warns when it is not zero). With the
adaptive sampling the boxes are cut on the grid's faces first, so that is exactly the part outside.

Bounds
------
A box's linear model can reach beyond any dose the trilinear field takes: past a hot spot at a dose-grid
node, or, for a contour box (a rectangle standing in for a piece of a trapezoid), past the structure's
edge. Every ``DVH`` of boxes is therefore bounded by ``DVH.bounds`` (lowest, highest): no trilinear dose
lies outside the least and largest values of the dose grid; a labelmap's boxes (exactly the structure) are
each bounded by the dose at their eight corners when they are parallel to the grid and inside one cell
(there the dose is multilinear, so its extremes are at the corners), otherwise by the values on the nodes
of the cells they reach; planar contours are bounded by the exact extremes of the dose over the contours
(``contours.ContourStructure.dose_extremes``). Dmax and Dmin are the box ranges' top and bottom clamped to
the bounds (a contour box's centre may itself lie a little outside the structure), every Dx lies between
them, and V is 0 above Dmax and ``Vin`` at or below Dmin. Where no bound cuts a box's range,
every value is as without bounds; Dmean, the exact mean of the trilinear dose, is never changed.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Dict, Iterable, Optional, Tuple

import numpy as np

from ..geometry.masks import Mask
from ..warnings import DoseWarning
from .grid import DoseError, DoseGrid

_METRIC_RE = re.compile(
    r"^(?:(D)(\d+(?:\.\d+)?)(%|cc)|(V)(\d+(?:\.\d+)?)Gy(%?)|(Dmean|Dmax|Dmin|Volume)|(DC)(\d+(?:\.\d+)?)cc)$"
)

#: DVH curves are drawn at dose levels 0, step, 2 step, ... with a round step chosen from the highest dose
#: (``curve_step_gy``), so that a curve has at most this many levels (about 250 to 500) whatever the dose's
#: magnitude: a curve costs O(samples + levels), never O(Dmax / 0.1 Gy).
MAX_CURVE_LEVELS = 600
CURVE_TARGET_LEVELS = 500

#: Relative and absolute floors of each half-width (see the module docstring).
_SPREAD_REL_FLOOR = 1e-4
_SPREAD_ABS_FLOOR = 1e-9


def curve_step_gy(max_dose_gy: float, levels: int = CURVE_TARGET_LEVELS) -> float:
    """A round dose step (1, 2, 2.5 or 5 x 10^k Gy) giving about ``levels`` / 2 to ``levels`` curve levels from
    0 Gy to past ``max_dose_gy`` (``DVH.curve`` then evaluates at most ``levels`` + 2 levels). The one step
    rule of every DVH curve drawn (report figure, Slicer chart, web demo)."""
    top = float(max_dose_gy)
    if not np.isfinite(top):
        raise ValueError(f"DVH curve: the highest dose must be a finite number of Gy; got {max_dose_gy}.")
    wanted = max(top, 1e-6) / levels
    power = 10.0 ** np.floor(np.log10(wanted))
    for mantissa in (1.0, 2.0, 2.5, 5.0, 10.0):
        if mantissa * power >= wanted * (1 - 1e-12):
            return float(mantissa * power)
    return float(10.0 * power)  # not reached


@dataclass(frozen=True)
class MetricSpec:
    """A parsed metric name such as "D2%", "D0.03cc", "V30Gy", "V30Gy%" or "Dmean"."""

    name: str
    kind: str  # "D", "V", "DC", "Dmean", "Dmax", "Dmin" or "Volume"
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
            "Dmean, Dmax, Dmin, Volume, or DCxcc (critical volume: the highest dose of the coldest x cc)."
        )
    if m.group(1):
        value, relative = float(m.group(2)), m.group(3) == "%"
        if relative and not 0 <= value <= 100:
            raise DoseError(f"DVH metric '{name}': Dx% is the dose to x% of the volume, so x must be 0 to 100.")
        return MetricSpec(name, "D", value, relative)
    if m.group(4):
        return MetricSpec(name, "V", float(m.group(5)), m.group(6) == "%")
    if m.group(8):
        return MetricSpec(name, "DC", float(m.group(9)))
    return MetricSpec(name, m.group(7))


# -- the dose distribution inside one box ---------------------------------------------------------------


def _floor_spreads(a: np.ndarray) -> np.ndarray:
    """Half-widths (float64) floored for stability; the largest gives back what the floors added, so each
    box's dose range (and so Dmax and Dmin) is unchanged. A float64 array that needs no floor is returned
    as it is, otherwise a copy."""
    a = np.asarray(a)
    floor = _SPREAD_REL_FLOOR * (a[:, 0] + a[:, 1] + a[:, 2]).astype(np.float64) + _SPREAD_ABS_FLOOR
    need = np.nonzero((a[:, 0] < floor) | (a[:, 1] < floor) | (a[:, 2] < floor))[0]
    if len(need) or a.dtype != np.float64:
        a = np.array(a, dtype=np.float64)
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
    pair = 1.0 - np.maximum(np.maximum(p1, p2), p3)
    return _cubic_tail(x, p1, p2, p3, pair, 1.0 / (6.0 * p1 * p2 * p3), total, density)


def _cubic_tail(x, p1, p2, p3, pair, inv6v, total, density: bool = False):
    """``_fraction_normalised`` with the pair corner ``pair`` = 1 - max p and ``inv6v`` = 1 / (6 p1 p2 p3)
    given. On the lower half x <= 1/2 the corners p_a + p_b = 1 - p_c lie above x but for the largest p_c
    (the p sum to 1), so four of the seven terms remain."""
    x = np.clip(x, 0.0, 1.0)
    flip = x > 0.5
    x = np.where(flip, 1.0 - x, x)
    sq = x * x
    num = sq * x
    slope = sq
    for corner, sign in ((p1, -1.0), (p2, -1.0), (p3, -1.0), (pair, 1.0)):
        t = np.maximum(x - corner, 0.0)
        t2 = t * t
        if sign > 0:
            num += t2 * t
            slope = slope + t2 if density else slope
        else:
            num -= t2 * t
            slope = slope - t2 if density else slope
    near = np.clip(num * inv6v, 0.0, 1.0)  # P(sum y <= t) for t on the lower half
    frac = np.where(flip, 1.0 - near, near)
    if not density:
        return frac
    return frac, np.maximum(slope * (3.0 * inv6v), 0.0) / total


class _Boxes:
    """The boxes of a DVH ready for V(D): centre doses ``d`` (descending), volumes ``w`` (running sum
    ``cum``), floored half-widths ``a`` (N, 3) and their sums ``half``: box i spans [d - half, d + half].

    Each box is either wholly at or above a level D (d - half >= D), wholly below it (d + half <= D), or
    straddles it; only the straddling boxes need the cubic. They are found from the centre doses (sorted)
    and the widest half-range; cumulative volumes of the bottoms and tops, binned, bound V(D) from below
    and above, which brackets each Dx before it is solved on the exact V."""

    n_bins = 4096

    def __init__(self, d: np.ndarray, spreads: np.ndarray, w: np.ndarray) -> None:
        self.a = _floor_spreads(spreads)
        self.half = self.a[:, 0] + self.a[:, 1] + self.a[:, 2]
        self.d, self.w = d, w
        self.cum = np.cumsum(w)
        self.reach = float(self.half.max())
        lo, hi = d - self.half, d + self.half
        self.bottom, self.top = float(lo.min()), float(hi.max())
        # V(e_k) >= (volume of boxes whose bottom is in bin k + 1 or above), and V(e_k) <= (volume of boxes
        # whose top is in bin k - 1 or above), e_k = bottom + k step: one bin of slack absorbs rounding
        self.step = max(self.top - self.bottom, 1e-12) / self.n_bins

        def above(k, weights):  # [k]: sum of the weights in bins >= k
            hist = np.bincount(k, weights=weights, minlength=self.n_bins)
            return np.concatenate([np.cumsum(hist[::-1])[::-1], [0.0]])

        k_lo, k_hi = (
            np.clip(np.floor((v - self.bottom) / self.step), 0, self.n_bins - 1).astype(np.int64) for v in (lo, hi)
        )
        self.lo_above, self.hi_above = above(k_lo, w), above(k_hi, w)
        # where to start Newton: V with each box's volume spread evenly over [lo, hi] (exact for a dose that
        # varies along one box axis), sum of w (hi - D)+ / width - w (lo - D)+ / width, exact at the bin edges
        density = 0.5 * w / self.half
        edges = self.bottom + self.step * np.arange(self.n_bins + 1)
        self.even = (above(k_hi, density * hi) - edges * above(k_hi, density)) - (
            above(k_lo, density * lo) - edges * above(k_lo, density)
        )

    def cubic(self, idx: np.ndarray):
        """(centre doses, volumes, widths, then the arguments of ``_cubic_tail`` after x) of boxes ``idx``."""
        a, half = self.a[idx], self.half[idx]
        p1, p2, p3 = a[:, 0] / half, a[:, 1] / half, a[:, 2] / half
        pair = 1.0 - np.maximum(np.maximum(p1, p2), p3)
        return self.d[idx], self.w[idx], 2.0 * half, p1, p2, p3, pair, 1.0 / (6.0 * p1 * p2 * p3)

    def windows(self, lo_levels: np.ndarray, hi_levels: np.ndarray):
        """For each interval (lo_levels[k], hi_levels[k]): the volume of the boxes wholly at or above its top,
        and the boxes whose dose range overlaps it, as (interval, box position) pairs."""
        neg = -self.d  # ascending (a view: d is sorted from high to low)
        start = int(np.searchsorted(neg, -(hi_levels.max() + self.reach), side="right"))  # before: wholly above
        stop = int(np.searchsorted(neg, -(lo_levels.min() - self.reach), side="left"))  # from here: wholly below
        d, half, w = self.d[start:stop], self.half[start:stop], self.w[start:stop]
        lo, hi = d - half, d + half
        base = np.full(len(lo_levels), float(self.cum[start - 1]) if start > 0 else 0.0)
        pairs, boxes = [], []
        rows = max(1, (1 << 24) // max(stop - start, 1))
        for k0 in range(0, len(lo_levels), rows):
            above = lo >= hi_levels[k0 : k0 + rows, None]
            base[k0 : k0 + rows] += np.einsum("km,m->k", above, w)  # not BLAS: its threads stall when busy
            k, j = np.nonzero(~above & (hi > lo_levels[k0 : k0 + rows, None]))
            pairs.append(k + k0)
            boxes.append(j + start)
        return base, np.concatenate(pairs), np.concatenate(boxes)

    def volumes_at(self, levels: np.ndarray) -> np.ndarray:
        """V(D) in cc at each of ``levels`` (1-D)."""
        levels = np.asarray(levels, dtype=np.float64)
        base, seg, idx = self.windows(levels, levels)  # the boxes wholly above each level, and those across it
        d, w, width, *shape = self.cubic(idx)
        frac = _cubic_tail((d - levels[seg]) / width + 0.5, *shape, None)
        return base + np.bincount(seg, weights=w * frac, minlength=len(levels))

    def brackets(self, cc: np.ndarray, lo: float, hi: float) -> Tuple[np.ndarray, np.ndarray]:
        """For each volume in ``cc`` an interval within [lo, hi] that holds sup{D : V(D) >= cc}."""
        count_lo = np.searchsorted(-self.lo_above[1:], -cc, side="right")  # k with V(e_k) >= cc: k < count
        count_hi = np.searchsorted(-self.hi_above, -cc, side="right")  # V(e_k) < cc for k >= count + 1
        a = self.bottom + (count_lo - 1) * self.step
        b = self.bottom + (count_hi + 1) * self.step
        return np.clip(a, lo, hi), np.clip(b, lo, hi)

    def solve(self, cc: np.ndarray, lo: float, hi: float) -> np.ndarray:
        """sup{D : V(D) >= cc} for each 0 < cc < Vin: safeguarded Newton steps on the exact V, for all
        volumes at once, each on the boxes that straddle its bracket (the others are wholly above or below
        every dose in it)."""
        cc = np.asarray(cc, dtype=np.float64)
        n = len(cc)
        lo_b, hi_b = self.brackets(cc, lo, hi)
        base, seg, idx = self.windows(lo_b, hi_b)
        d, w, width, *shape = self.cubic(idx)
        # start where V with evenly spread boxes (binned) reaches cc
        k = np.clip(np.searchsorted(-self.even, -cc, side="right"), 1, self.n_bins)  # even[k - 1] >= cc > even[k]
        v0, v1 = self.even[k - 1], self.even[k]
        start = self.bottom + self.step * (k - 1 + np.clip((v0 - cc) / np.maximum(v0 - v1, 1e-300), 0.0, 1.0))
        level = np.where((lo_b < start) & (start < hi_b), start, 0.5 * (lo_b + hi_b))
        v = np.zeros(n)
        slope = np.zeros(n)
        todo = np.ones(n, dtype=bool)
        tol_v = 1e-13 * float(self.cum[-1])
        for _ in range(100):
            frac, dens = _cubic_tail((d - level[seg]) / width + 0.5, *shape, width, density=True)
            v = np.where(todo, base + np.bincount(seg, weights=w * frac, minlength=n), v)
            slope = np.where(todo, np.bincount(seg, weights=w * dens, minlength=n), slope)
            lo_b = np.where(todo & (v >= cc), level, lo_b)
            hi_b = np.where(todo & (v < cc), level, hi_b)
            todo &= ~((np.abs(v - cc) <= tol_v) | (hi_b - lo_b <= 1e-10))
            if not todo.any():
                break
            with np.errstate(divide="ignore", invalid="ignore"):
                step = level + (v - cc) / slope
            newton = (slope > 0) & (lo_b < step) & (step < hi_b)
            settled = todo & newton & (np.abs(step - level) <= 1e-9)  # Newton has converged: take its step
            level = np.where(todo, np.where(newton, step, 0.5 * (lo_b + hi_b)), level)
            todo &= ~settled
            if not todo.any():
                break
        flat = np.nonzero((slope <= 0) & (v >= cc))[0]
        if len(flat):  # V is flat there: the answer is the bottom of the next box above
            bottoms = self.d - self.half
            for k in flat:
                above = bottoms[bottoms > level[k]]
                if len(above):
                    level[k] = float(above.min())
        return level


# -- supersampling --------------------------------------------------------------------------------------


def choose_supersampling(
    mask: Mask,
    dose: Optional[DoseGrid] = None,
    max_step_mm: float = 1.0,
    hot_volume_cc: float = 0.03,
    min_hot_samples: int = 200,
    max_samples: int = 2_000_000,
) -> Tuple[int, int, int]:
    """Sub-cubes per voxel along (i, j, k) for a labelmap structure: for the tails of the adaptive sampling
    (module docstring), and for all voxels of a structure too large for it (over 250 000 voxels, about
    300 cc on a 0.98 x 0.98 x 1.25 mm CT, as all structures were sampled before).

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
    bounds: Optional[Tuple[float, float]] = None  # (lowest, highest) dose the structure can receive, see "Bounds"

    def scaled(self, factor: float) -> DVH:
        """The DVH of the same structure under the dose multiplied by ``factor`` (exact: every sample's dose
        and spread scale with it)."""
        if not np.isfinite(factor) or factor <= 0:
            raise DoseError(f"{self.structure}: a dose scale factor must be a finite number > 0; got {factor}.")
        spreads = None if self.spreads is None else np.asarray(self.spreads) * factor
        bounds = None if self.bounds is None else (self.bounds[0] * factor, self.bounds[1] * factor)
        return DVH(
            self.structure,
            self.doses * factor,
            self.cum_volume_cc,
            self.volume_cc,
            self.fraction_outside,
            self.supersampling,
            spreads,
            self.sampling,
            bounds,
        )

    def with_outside_at_zero(self) -> DVH:
        """The DVH with the part outside the dose grid counted as 0 Gy (for an organ at risk whose outside
        part is known to be in low dose); Dx% and VxGy% are then relative to the whole structure."""
        outside_cc = self.volume_cc * self.fraction_outside
        if outside_cc <= 0:
            return self
        spreads, zero = None, 0.0
        if self.spreads is not None:
            floor = _floor_spreads(np.zeros((1, 3)))  # the least range a box has: centred so it ends at 0 Gy
            spreads, zero = np.vstack([self.spreads, floor]), float(floor.sum())
        doses = np.append(self.doses, min(zero, float(self.doses[-1])))
        cum = np.append(self.cum_volume_cc, self.cum_volume_cc[-1] + outside_cc)
        return DVH(
            self.structure,
            doses,
            cum,
            self.volume_cc,
            0.0,
            self.supersampling,
            spreads,
            self.sampling + " + outside at 0 Gy",
            None if self.bounds is None else (0.0, self.bounds[1]),
        )

    def __post_init__(self) -> None:
        d = np.asarray(self.doses, dtype=np.float64)
        cum = np.asarray(self.cum_volume_cc, dtype=np.float64)
        if d.ndim != 1 or cum.shape != d.shape or len(d) == 0:
            raise DoseError(f"{self.structure}: a DVH needs one running volume per dose sample, and samples.")
        if np.any(d[1:] > d[:-1]):
            raise DoseError(f"{self.structure}: DVH doses must be sorted from high to low.")
        weights = np.diff(cum, prepend=0.0)
        object.__setattr__(self, "doses", d)
        object.__setattr__(self, "cum_volume_cc", cum)
        object.__setattr__(self, "_mean", float(np.einsum("n,n->", d, weights) / cum[-1]))
        object.__setattr__(self, "_dx_cache", {})
        if self.spreads is None:  # point samples: V(D) is the volume of the samples with dose >= D
            object.__setattr__(self, "_boxes", None)
            object.__setattr__(self, "_max", float(d[0]))
            object.__setattr__(self, "_min", float(d[-1]))
            return
        a = np.asarray(self.spreads)
        if a.shape != (len(d), 3) or np.any(a < 0):
            raise DoseError(f"{self.structure}: spreads must be (N, 3) half-widths >= 0.")
        boxes = _Boxes(d, a, weights)  # flooring keeps each box's range (module docstring)
        object.__setattr__(self, "_boxes", boxes)
        top, bottom = boxes.top, boxes.bottom
        if self.bounds is not None:  # the dose cannot reach beyond them, whatever the linear model says
            low, high = (float(v) for v in self.bounds)
            top = min(top, high)
            bottom = min(max(bottom, low), top)
        object.__setattr__(self, "_cut", (top < boxes.top, bottom > boxes.bottom))
        object.__setattr__(self, "_max", top)
        # a physical dose is never negative: the spreads' 1e-9 Gy floor must not make Dmin (or a Dx) so
        object.__setattr__(self, "_min", max(bottom, 0.0) if d[-1] >= 0 else bottom)

    # -- exact V(D) -------------------------------------------------------------------------------------
    @property
    def evaluated_volume_cc(self) -> float:
        """Volume (cc) of the part of the structure inside the dose grid (``Vin``)."""
        return float(self.cum_volume_cc[-1])

    def volumes_at_doses_cc(self, levels) -> np.ndarray:
        """V(D) in cc at each dose of ``levels`` (Gy)."""
        levels = np.atleast_1d(np.asarray(levels, dtype=np.float64))
        if self._boxes is None:
            n = np.searchsorted(-self.doses, -levels, side="right")  # samples with dose >= level
            return np.where(n > 0, self.cum_volume_cc[np.maximum(n - 1, 0)], 0.0)
        return self._bounded(levels, self._boxes.volumes_at(levels))

    def _bounded(self, levels: np.ndarray, volumes: np.ndarray) -> np.ndarray:
        """V at ``levels`` with the bounds applied: nothing above Dmax, everything at or above Dmin (only where
        a bound cut a box's linear range; the volumes are otherwise unchanged)."""
        cut_top, cut_bottom = self._cut
        if cut_top:
            volumes = np.where(levels > self._max, 0.0, volumes)
        if cut_bottom:
            volumes = np.where(levels <= self._min, self.evaluated_volume_cc, volumes)
        return volumes

    def volume_at_dose_cc(self, gy: float) -> float:
        """Volume (cc) receiving at least ``gy``: V(gy)."""
        return float(self.volumes_at_doses_cc([float(gy)])[0])

    def doses_at_volumes_cc(self, volumes_cc) -> np.ndarray:
        """Minimum dose received by the hottest ``cc``, sup{D : V(D) >= cc}, for each of ``volumes_cc``
        (exact, no bins; all solved together)."""
        cc = np.atleast_1d(np.asarray(volumes_cc, dtype=np.float64))
        total = self.evaluated_volume_cc
        if np.any(cc > total * (1 + 1e-9)):
            bad = float(cc[cc > total * (1 + 1e-9)][0])
            raise DoseError(
                f"{self.structure}: D{bad:g}cc is not defined, the structure has only {total:.4g} cc inside the "
                "dose grid."
            )
        out = np.where(cc <= 0, self.max, self.min)
        inner = np.nonzero((cc > 0) & (cc < total))[0]
        todo = [i for i in inner if float(cc[i]) not in self._dx_cache]
        if todo:
            if self._boxes is None:
                idx = np.searchsorted(self.cum_volume_cc, cc[todo] * (1 - 1e-12), side="left")
                found = self.doses[np.minimum(idx, len(self.doses) - 1)]
            else:
                found = self._boxes.solve(cc[todo], self.min, self.max)
            self._dx_cache.update(zip((float(cc[i]) for i in todo), (float(v) for v in found)))
        for i in inner:
            out[i] = self._dx_cache[float(cc[i])]
        return np.maximum(out, 0.0) if self.doses[-1] >= 0 else out

    def dose_at_volume_cc(self, cc: float) -> float:
        """Minimum dose received by the hottest ``cc``: sup{D : V(D) >= cc} (exact, no bins)."""
        return float(self.doses_at_volumes_cc([float(cc)])[0])

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
        return self.metrics([name])[name]

    def metrics(self, names: Iterable[str]) -> Dict[str, float]:
        """Values of several metrics ({name: value}); their Dx are solved together."""
        specs = [parse_metric(n) for n in names]
        total = self.evaluated_volume_cc
        for spec in specs:
            if spec.kind == "D" and spec.relative and not 0 <= spec.value <= 100:
                raise DoseError(f"{self.structure}: D{spec.value:g}% needs 0 <= x <= 100.")
        for spec in specs:
            if spec.kind == "DC" and spec.value > total * (1 + 1e-9):
                raise DoseError(
                    f"{self.structure}: {spec.name} is not defined, the structure has only {total:.4g} cc inside "
                    "the dose grid."
                )
        d_specs = [spec for spec in specs if spec.kind in ("D", "DC")]
        cc = [
            max(total - spec.value, 0.0)
            if spec.kind == "DC"
            else total * spec.value / 100.0
            if spec.relative
            else spec.value
            for spec in d_specs
        ]
        d_values = dict(zip((spec.name for spec in d_specs), self.doses_at_volumes_cc(cc))) if d_specs else {}
        v_specs = [spec for spec in specs if spec.kind == "V"]
        v_cc = self.volumes_at_doses_cc([spec.value for spec in v_specs]) if v_specs else []
        v_values = {
            spec.name: (100.0 * float(v) / total if spec.relative else float(v)) for spec, v in zip(v_specs, v_cc)
        }
        fixed = {"Volume": self.volume_cc, "Dmean": self.mean, "Dmax": self.max, "Dmin": self.min}
        out = {}
        for spec in specs:
            if spec.kind in ("D", "DC"):
                out[spec.name] = float(d_values[spec.name])
            elif spec.kind == "V":
                out[spec.name] = v_values[spec.name]
            else:
                out[spec.name] = fixed[spec.kind]
        return out

    def curve(self, step_gy: Optional[float] = None) -> Tuple[np.ndarray, np.ndarray]:
        """Cumulative DVH for plotting: dose levels 0, step, 2 step, ... (Gy) up to the first level above
        Dmax, and the percent of ``Vin`` receiving at least each level (exact V at every level).

        The work is bounded whatever the dose's magnitude: the default step is ``curve_step_gy(Dmax)``, and a
        step that would give more than ``MAX_CURVE_LEVELS`` levels is widened to it."""
        if step_gy is None:
            step_gy = curve_step_gy(self.max)
        if not step_gy > 0:
            raise ValueError(f"DVH curve step must be > 0 Gy; got {step_gy}.")
        if self.max / step_gy + 2 > MAX_CURVE_LEVELS:
            step_gy = max(float(step_gy), curve_step_gy(self.max))
        n_levels = int(np.floor(self.max / step_gy)) + 2
        levels = np.arange(n_levels) * step_gy
        if self._boxes is None:
            return levels, 100.0 * self.volumes_at_doses_cc(levels) / self.evaluated_volume_cc
        bx = self._boxes
        lo, hi = bx.d - bx.half, bx.d + bx.half
        # levels k <= floor(lo / step) are fully at or below the box: the whole box counts
        k_full = np.clip(np.floor(lo / step_gy).astype(np.int64), -1, n_levels - 1)
        hist = np.bincount(k_full + 1, weights=bx.w, minlength=n_levels + 1)
        vol = np.cumsum(hist[::-1])[::-1][1:]
        # levels strictly inside (lo, hi) take a fraction of the box
        first = k_full + 1
        last = np.minimum(np.ceil(hi / step_gy).astype(np.int64) - 1, n_levels - 1)
        counts = np.maximum(last - first + 1, 0)
        # boxes sorted by how many levels they straddle: level offset m concerns a prefix of them
        todo = np.nonzero(counts)[0]
        todo = todo[np.argsort(-counts[todo], kind="stable")]
        box_d, box_w, width, *shape = bx.cubic(todo)
        first, counts = first[todo], counts[todo]
        for m in range(int(counts[0]) if len(counts) else 0):
            n = int(np.searchsorted(-counts, -m, side="left"))  # boxes with more than m levels
            k = first[:n] + m
            x = (box_d[:n] - levels[k]) / width[:n] + 0.5
            frac = _cubic_tail(x, *(v[:n] for v in shape), None)
            vol += np.bincount(k, weights=box_w[:n] * frac, minlength=n_levels)
        return levels, 100.0 * self._bounded(levels, vol) / self.evaluated_volume_cc


# -- building a DVH from boxes ------------------------------------------------------------------------
# (small matrix products use einsum: BLAS threads cost more than they save on (n, 3) arrays)

#: A chunk of boxes: (centres (n, 3) in dose-grid index coordinates; edge directions (3, 3), row m = the
#: dose-index displacement of a unit step along the box's axis m; edge lengths (n, 3) or (3,) in those
#: units; volumes (n,) or scalar in cc).
BoxChunk = Tuple[np.ndarray, np.ndarray, np.ndarray, object]

#: The tails' boxes are refined where the dose's cross terms could move them by more than this (Gy)...
TAIL_CROSS_GY = 1e-6
#: ... and those that may hold the highest or lowest dose halved until the cross terms could move them by
#: at most this (Gy), TAIL_HALVINGS times at most.
TAIL_SLACK_GY = 0.02
TAIL_HALVINGS = 4
#: Labelmaps with more voxels than this are sampled uniformly (``choose_supersampling``), in chunks.
_ADAPTIVE_MAX_VOXELS = 250_000
#: Boxes cut and evaluated at once.
_CHUNK_BOXES = 1 << 17


@dataclass(frozen=True)
class Refinement:
    """Adaptive sampling for ``dvh_from_boxes`` (module docstring, "How a structure is sampled"): boxes
    are cut on the planes of dose-grid voxel centres; those that may hold the hottest or the coldest
    ``tail_cc`` are cut to edges of at most ``tail_lengths`` (in the boxes' length units) unless the dose
    is linear in their cell, and those that may hold the extremes halved while their cross terms could
    move them by more than TAIL_SLACK_GY. The tails stop growing at about ``max_boxes`` boxes."""

    tail_lengths: Tuple[float, float, float]
    tail_cc: float = 0.03
    max_boxes: int = 4_000_000


def _split(centres, edges, lengths, volumes, factors):
    """Each box cut into factors[m] equal parts along its axis m: (centres, lengths, volumes) of the parts."""
    factors = np.asarray(factors, dtype=np.int64)
    counts = factors.prod(axis=1)
    owner = np.repeat(np.arange(len(counts)), counts)
    local = np.arange(len(owner)) - np.repeat(np.cumsum(counts) - counts, counts)
    f = factors[owner]
    rest, j2 = np.divmod(local, f[:, 2])
    j0, j1 = np.divmod(rest, f[:, 1])
    sub = lengths[owner] / f
    offsets = (np.stack([j0, j1, j2], axis=1) + 0.5) * sub - 0.5 * lengths[owner]
    return centres[owner] + np.einsum("nm,mc->nc", offsets, edges), sub, volumes[owner] / counts[owner]


def _half_extents(edges: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """How far (grid steps) each box reaches from its centre along the dose-grid axes i, j, k."""
    return 0.5 * np.einsum("nm,mc->nc", lengths, np.abs(edges))


def _grid_axes(edges: np.ndarray) -> Optional[np.ndarray]:
    """The dose-grid axis along which each box axis runs, or None when the boxes are oblique to the grid."""
    big = np.abs(edges) > 1e-9 * np.abs(edges).max()
    axes = np.argmax(big, axis=1)
    if np.all(big.sum(axis=1) == 1) and len(set(axes.tolist())) == 3:
        return axes
    return None


def _cut_at_planes(centres, lengths, volumes, edges, axes, planes):
    """Boxes parallel to the grid cut on the planes they straddle: ``planes[c]`` (sorted) are positions
    along grid axis c (index units). A cut box keeps its first part (the arrays are changed in place); the
    others are added."""
    for m in range(3):
        c = int(axes[m])
        reach = lengths[:, m] * (0.5 * abs(edges[m, c]))
        lo, hi = centres[:, c] - reach, centres[:, c] + reach
        first = np.searchsorted(planes[c], lo, side="right")  # the first plane above lo
        count = np.searchsorted(planes[c], hi, side="left") - first  # planes strictly inside (lo, hi)
        cut = np.nonzero(count > 0)[0]
        if not len(cut):
            continue
        lo, hi, first, count = lo[cut], hi[cut], first[cut], count[cut]
        width = hi - lo
        # the added parts: from each plane to the next one, the last one to hi
        owner = np.repeat(np.arange(len(cut)), count)
        j = np.arange(len(owner)) - np.repeat(np.cumsum(count) - count, count)
        k = first[owner] + j
        start = planes[c][k]
        end = np.where(j < count[owner] - 1, planes[c][np.minimum(k + 1, len(planes[c]) - 1)], hi[owner])
        share = (end - start) / width[owner]
        source = cut[owner]
        added_centres, added_lengths = centres[source], lengths[source]
        added_centres[:, c] = 0.5 * (start + end)
        added_lengths[:, m] *= share
        added_volumes = volumes[source] * share
        # the box itself becomes its first part, up to the first plane
        edge = planes[c][first]
        share = (edge - lo) / width
        centres[cut, c] = 0.5 * (lo + edge)
        lengths[cut, m] *= share
        volumes[cut] *= share
        centres = np.concatenate([centres, added_centres])
        lengths = np.concatenate([lengths, added_lengths])
        volumes = np.concatenate([volumes, added_volumes])
    return centres, lengths, volumes


def _halve_to(centres, lengths, volumes, edges, reach: float):
    """Boxes oblique to the grid: their longer axes halved until none reaches more than ``reach`` grid steps
    from its centre along a grid axis."""
    steps = np.linalg.norm(edges, axis=1)  # grid steps per unit length along each box axis
    done = []
    while len(centres):
        need = _half_extents(edges, lengths).max(axis=1) > reach + 1e-9
        done.append((centres[~need], lengths[~need], volumes[~need]))
        size = lengths[need] * steps
        factors = np.where(size >= 0.5 * size.max(axis=1, initial=0.0)[:, None], 2, 1)
        centres, lengths, volumes = _split(centres[need], edges, lengths[need], volumes[need], factors)
    return tuple(np.concatenate(parts) for parts in zip(*done))


def _cross_slack(bends, centres, edges, lengths) -> np.ndarray:
    """How far (Gy) the trilinear dose may depart from the linear model of boxes that each lie in one cell:
    the cross terms, |c_ij r_i r_j + ...| with |c| at most the cell's largest cross difference (and twice it
    for the xyz term), r the box's half-extent in grid steps."""
    r = _half_extents(edges, lengths)
    ri, rj, rk = r[:, 0], r[:, 1], r[:, 2]
    return bends.cross_at(centres) * (ri * rj + ri * rk + rj * rk + 2.0 * ri * rj * rk)


def _tails(lo, hi, w, slack, tail_cc: float, n_bins: int = 4096) -> np.ndarray:
    """Which boxes may hold part of the hottest or the coldest ``tail_cc``, given that each box's true dose
    lies within ``slack`` of its model range [lo, hi]. The boxes wholly above a level L (binned, so L is
    a little low) hold ``tail_cc``: the hottest ``tail_cc`` then receives at least L minus their largest
    slack, which a box can reach only if hi + slack does. Likewise for the coldest."""
    if float(w.sum()) <= tail_cc:
        return np.ones(len(w), dtype=bool)
    bottom = float(lo.min())
    step = max(float(hi.max()) - bottom, 1e-12) / n_bins
    lo_bin = np.clip(np.floor((lo - bottom) / step), 0, n_bins - 1).astype(np.int64)
    above = np.cumsum(np.bincount(lo_bin, weights=w, minlength=n_bins)[::-1])[::-1]  # volume in bins >= k
    top = lo_bin >= int(np.nonzero(above >= tail_cc)[0][-1])  # boxes wholly above L, holding tail_cc
    hot_floor = float((lo[top] - slack[top]).min())
    hi_bin = np.clip(np.floor((hi - bottom) / step), 0, n_bins - 1).astype(np.int64)
    below = np.cumsum(np.bincount(hi_bin, weights=w, minlength=n_bins))  # volume in bins <= k
    low = hi_bin <= int(np.nonzero(below >= tail_cc)[0][0])  # boxes wholly below U, holding tail_cc
    cold_ceiling = float((hi[low] + slack[low]).max())
    return (hi + slack >= hot_floor) | (lo - slack <= cold_ceiling)


def _evaluate(dose: DoseGrid, centres, edges, lengths):
    """Centre doses, half-widths (n, 3) of each box's linear dose range, and which centres lie inside."""
    d, grad, inside = dose.interpolate_index(centres, gradient=True)
    a = np.abs(np.einsum("nc,mc->nm", grad, edges)) * (0.5 * np.asarray(lengths, dtype=np.float64))
    return d, a, inside


def _adaptive_boxes(dose: DoseGrid, chunks, refinement: Refinement, reach: Optional[_Reach] = None):
    """(doses, half-widths (n, 3), inside, volumes) of the boxes of ``chunks``, cut where the dose bends
    (module docstring); the boxes' dose bounds go to ``reach`` when given."""
    edges = np.asarray(chunks[0][1], dtype=np.float64)
    if any(not np.array_equal(np.asarray(c[1], dtype=np.float64), edges) for c in chunks[1:]):
        raise ValueError("Adaptive sampling needs the same box edges in every chunk.")
    centres = np.concatenate([np.asarray(c[0], dtype=np.float64) for c in chunks])
    lengths = np.concatenate([np.broadcast_to(np.asarray(c[2], dtype=np.float64), (len(c[0]), 3)) for c in chunks])
    volumes = np.concatenate([np.broadcast_to(np.asarray(c[3], dtype=np.float64), (len(c[0]),)) for c in chunks])
    r = _half_extents(edges, lengths)
    bends = dose.bends((centres - r).min(axis=0), (centres + r).max(axis=0))
    # the grid's outer faces (so that each box is wholly inside or outside), and where the dose may bend the
    # planes of voxel centres (inside each cell the dose is then linear but for its cross terms)
    nk, nj, ni = dose.geometry.shape
    faces = [np.array([-0.5, n - 0.5]) for n in (ni, nj, nk)]
    planes = faces if bends.linear else [np.concatenate([[-0.5], np.arange(n), [n - 0.5]]) for n in (ni, nj, nk)]
    axes = _grid_axes(edges)
    parts = []
    for s in range(0, len(centres), _CHUNK_BOXES):  # in chunks, to bound the memory of the steps
        part = centres[s : s + _CHUNK_BOXES].copy(), lengths[s : s + _CHUNK_BOXES].copy(), volumes[s : s + _CHUNK_BOXES]
        if axes is not None:
            part = _cut_at_planes(*part, edges=edges, axes=axes, planes=planes)
        else:
            part = _halve_to(*part, edges=edges, reach=0.25)
        if bends.linear:  # every box is exact as it is
            parts.append(_evaluate(dose, part[0], edges, part[1]) + (part[2],))
            if reach is not None:
                d, a, inside = parts[-1][:3]
                reach.add(part[0], part[1], d, a.sum(axis=1), inside)
        else:
            parts.append(part + _evaluate(dose, part[0], edges, part[1]))
    if bends.linear:
        return tuple(np.concatenate(p) for p in zip(*parts))  # (d, a, inside, volumes)
    centres, lengths, volumes, d, a, inside = (np.concatenate(p) for p in zip(*parts))
    del parts
    # the tails: the boxes that may hold part of the hottest or coldest tail_cc are cut to the tail lengths;
    # then those that may hold the highest or lowest dose are halved while their cross terms could move
    # them by more than TAIL_SLACK_GY (in rounds: as boxes shrink, fewer may hold the extremes)
    if axes is not None:  # a box in one cell departs from its linear model by its cross terms at most
        slack = _cross_slack(bends, centres, edges, lengths)
    else:  # halved boxes may straddle a bend: a generous bound, which halving does not lower
        slack = np.full(len(d), 3.0 * bends.largest)
    blocks = [_Block(centres, lengths, volumes, d, a, inside, slack)]
    half = blocks[0].half[inside]
    chosen = _tails(d[inside] - half, d[inside] + half, volumes[inside], slack[inside], refinement.tail_cc)
    idx = np.nonzero(inside)[0][chosen & (slack[inside] > TAIL_CROSS_GY)]
    tail_lengths = np.asarray(refinement.tail_lengths, dtype=np.float64)
    factors = np.maximum(1, np.ceil(lengths[idx] / tail_lengths - 1e-9)).astype(np.int64)
    made = len(d)
    steps = np.linalg.norm(edges, axis=1)  # grid steps per unit length along each box axis
    for round_ in range(1 + (TAIL_HALVINGS if axes is not None else 0)):
        if round_ > 0:  # the highest dose is at least max(hi - slack), the lowest at most min(lo + slack)
            hot = max(float((b.d + b.half - b.slack)[b.keep & b.inside].max(initial=-np.inf)) for b in blocks)
            cold = min(float((b.d - b.half + b.slack)[b.keep & b.inside].min(initial=np.inf)) for b in blocks)
        todo = []
        for block in blocks if round_ > 0 else blocks[:1]:
            if round_ > 0:
                hi, lo = block.d + block.half, block.d - block.half
                may = (hi + block.slack >= hot) | (lo - block.slack <= cold)
                idx = np.nonzero(block.keep & block.inside & may & (block.slack > TAIL_SLACK_GY))[0]
                size = block.lengths[idx] * steps
                factors = np.where(size >= 0.5 * size.max(axis=1, initial=0.0)[:, None], 2, 1)
            cut = factors.prod(axis=1) > 1
            todo.append((block, idx[cut], factors[cut]))
        count = sum(int(f.prod(axis=1).sum()) - len(i) for _, i, f in todo)
        if made + count > refinement.max_boxes or (count == 0 and round_ > 0):
            break
        made += count
        for block, idx, factors in todo:
            if len(idx):
                parts = _split(block.centres[idx], edges, block.lengths[idx], block.volumes[idx], factors)
                d2, a2, inside2 = _evaluate(dose, parts[0], edges, parts[1])
                if axes is not None:
                    slack2 = _cross_slack(bends, parts[0], edges, parts[1])
                else:
                    slack2 = np.full(len(d2), 3.0 * bends.largest)
                block.keep[idx] = False
                blocks.append(_Block(*parts, d2, a2, inside2, slack2))
    if reach is not None:
        for b in blocks:
            reach.add(b.centres[b.keep], b.lengths[b.keep], b.d[b.keep], b.half[b.keep], b.inside[b.keep])
    return tuple(np.concatenate([getattr(b, name)[b.keep] for b in blocks]) for name in ("d", "a", "inside", "volumes"))


def _box_dose_ranges(dose: DoseGrid, centres, edges, lengths) -> Tuple[np.ndarray, np.ndarray]:
    """The lowest and highest trilinear dose anywhere in each box (module docstring, "Bounds"): exact (the
    dose at its eight corners) for a box parallel to the grid inside one cell, where the dose is multilinear;
    otherwise the least and largest dose value on the nodes of the cells the box reaches."""
    values = np.asarray(dose.array)
    upper = np.array(values.shape[::-1], dtype=np.float64) - 1.0  # (i, j, k)
    r = _half_extents(edges, lengths)
    lo = np.clip(centres - r, 0.0, upper)
    hi = np.clip(centres + r, 0.0, upper)
    cell = np.minimum(np.floor(np.clip(centres, 0.0, upper)), np.maximum(upper - 1.0, 0.0))
    low, high = np.empty(len(centres)), np.empty(len(centres))
    one = np.all(lo >= cell - 1e-9, axis=1) & np.all(hi <= cell + 1.0 + 1e-9, axis=1)
    if _grid_axes(edges) is None:
        one[:] = False  # a trilinear dose along an oblique edge is a cubic: its corners do not bound it
    if one.any():
        signs = np.array([[a, b, c] for a in (-1, 1) for b in (-1, 1) for c in (-1, 1)], dtype=np.float64)
        corners = (centres[one, None, :] + signs[None] * r[one, None, :]).reshape(-1, 3)
        at = dose.interpolate_index(corners)[0].reshape(-1, 8)
        low[one], high[one] = at.min(axis=1), at.max(axis=1)
    rest = np.nonzero(~one)[0]
    if len(rest):
        first = np.floor(lo[rest] + 1e-9).astype(np.int64)
        last = np.ceil(hi[rest] - 1e-9).astype(np.int64)
        span = last - first + 1
        wide = np.prod(span, axis=1) > 4096
        if wide.any():  # bounded by the whole grid
            low[rest[wide]], high[rest[wide]] = float(values.min()), float(values.max())
        rest, first, last, span = rest[~wide], first[~wide], last[~wide], span[~wide]
        if len(rest):
            lows, highs = np.full(len(rest), np.inf), np.full(len(rest), -np.inf)
            for oi in range(int(span[:, 0].max())):
                for oj in range(int(span[:, 1].max())):
                    for ok in range(int(span[:, 2].max())):
                        node = np.minimum(first + np.array([oi, oj, ok]), last)
                        v = values[node[:, 2], node[:, 1], node[:, 0]]
                        np.minimum(lows, v, out=lows)
                        np.maximum(highs, v, out=highs)
            low[rest], high[rest] = lows, highs
    return low, high


class _Reach:
    """The lowest and highest dose a structure's boxes can receive (module docstring, "Bounds"). A box centre
    dose is a dose the structure receives, so only the boxes whose linear range reaches beyond the highest or
    the lowest centre dose are kept (few) and bounded at the end."""

    def __init__(self, dose: DoseGrid, edges) -> None:
        self.dose, self.edges = dose, np.asarray(edges, dtype=np.float64)
        self.hot, self.cold = -np.inf, np.inf
        self.parts = []

    def add(self, centres, lengths, d, half, inside) -> None:
        if not np.any(inside):
            return
        self.hot = max(self.hot, float(d[inside].max()))
        self.cold = min(self.cold, float(d[inside].min()))
        top, bottom = d + half, d - half
        pick = np.nonzero(inside & ((top > self.hot) | (bottom < self.cold)))[0]
        if len(pick):
            lengths = np.broadcast_to(np.asarray(lengths, dtype=np.float64), (len(d), 3))
            self.parts.append((np.asarray(centres)[pick], lengths[pick], top[pick], bottom[pick]))

    def result(self) -> Optional[Tuple[float, float]]:
        """(lowest, highest) dose of the boxes added, or None when none was inside the grid."""
        if not np.isfinite(self.hot):
            return None
        low, high = self.cold, self.hot
        if self.parts:
            centres, lengths, top, bottom = (np.concatenate(p) for p in zip(*self.parts))
            pick = (top > self.hot) | (bottom < self.cold)
            if pick.any():
                lo, hi = _box_dose_ranges(self.dose, centres[pick], self.edges, lengths[pick])
                high = max(high, float(np.minimum(top[pick], hi).max()))
                low = min(low, float(np.maximum(bottom[pick], lo).min()))
        return low, high


class _Block:
    """Boxes of the adaptive sampling with their dose model and cross-term slack; ``keep`` marks those not
    yet replaced by finer ones."""

    def __init__(self, centres, lengths, volumes, d, a, inside, slack) -> None:
        self.centres, self.lengths, self.volumes = centres, lengths, volumes
        self.d, self.a, self.inside, self.slack = d, a, inside, slack
        self.half = a[:, 0] + a[:, 1] + a[:, 2]
        self.keep = np.ones(len(d), dtype=bool)


def dvh_from_boxes(
    name: str,
    dose: DoseGrid,
    chunks: Iterable[BoxChunk],
    volume_cc: Optional[float] = None,
    supersampling: Tuple[int, ...] = (1, 1, 1),
    sampling: str = "",
    stacklevel: int = 2,
    refinement: Optional[Refinement] = None,
    bounds: Optional[Tuple[float, float]] = None,
    exact_boxes: bool = False,
) -> DVH:
    """DVH of a structure given as boxes (see ``BoxChunk``): trilinear dose and gradient at each centre,
    each box's volume spread over its linear dose range. With ``refinement`` the boxes are first split
    where the dose bends (module docstring). Warns (DoseWarning) when part of the structure lies outside
    the dose grid; raises DoseError when all of it does.

    The DVH is bounded (module docstring, "Bounds") by the dose grid's least and largest values, by
    ``bounds`` (lowest, highest) when the caller knows the structure's own, and with ``exact_boxes`` (the
    boxes are exactly the structure, as a labelmap's voxels are) by each box's reachable range."""
    doses, spreads, weights = [], [], []
    total = outside = 0.0
    reach = None
    if refinement is not None:
        chunks = [c for c in chunks if len(c[0])]
        if exact_boxes and chunks:
            reach = _Reach(dose, chunks[0][1])
        chunks = [_adaptive_boxes(dose, chunks, refinement, reach)] if chunks else []
    else:

        def evaluated(source):
            nonlocal reach
            for c, e, length, volumes in source:
                if len(c):
                    d, a, inside = _evaluate(dose, c, e, length)
                    if exact_boxes:
                        reach = reach or _Reach(dose, e)
                        reach.add(np.asarray(c, dtype=np.float64), length, d, a.sum(axis=1), inside)
                    yield d, a, inside, volumes

        chunks = evaluated(chunks)
    for d, a, inside, vol in chunks:
        vol = np.broadcast_to(np.asarray(vol, dtype=np.float64), d.shape)
        total += float(vol.sum())
        outside += float(vol[~inside].sum())
        doses.append(d[inside])
        spreads.append(a[inside])
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
            f"{percent_text(fraction_outside)} of {name} lies outside the dose grid {dose.name}; its metrics cover "
            "only the part inside (Dx% and VxGy% are relative to that part).",
            DoseWarning,
            stacklevel=stacklevel + 1,
        )
    d = np.concatenate(doses)
    order = np.argsort(-d)
    a = _floor_spreads(np.concatenate(spreads)[order])  # floored once: the DVH keeps this array
    w = np.concatenate(weights)[order]
    volume = float(total if volume_cc is None else volume_cc)
    if refinement is not None:
        sampling = f"{sampling} ({len(d)} boxes)" if sampling else f"{len(d)} boxes"
    low, high = float(dose.array.min()), float(dose.array.max())  # no trilinear dose is beyond them
    for given in (bounds, reach.result() if reach is not None else None):
        if given is not None:
            low, high = max(low, float(given[0])), min(high, float(given[1]))
    return DVH(name, d[order], np.cumsum(w), volume, fraction_outside, tuple(supersampling), a, sampling, (low, high))


def percent_text(fraction: float) -> str:
    """A fraction as a percentage for messages: "< 0.01%" for a small fraction that is not zero (never "0.00%")."""
    pct = 100.0 * float(fraction)
    if 0 < pct < 0.005:
        return "< 0.01%"
    return f"{pct:.2f}%"


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

    ``structure`` is a labelmap ``Mask`` (each voxel a cube of tissue) or a planar-contour structure
    (``contours.ContourStructure``; ``supersampling`` is then ignored, its own rules apply). For a labelmap,
    ``supersampling`` = sub-cubes per voxel along i, j, k for all voxels; when None the sampling adapts to
    the dose (module docstring), with ``choose_supersampling`` in the tails.
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
    if supersampling is not None or mask.voxel_count > _ADAPTIVE_MAX_VOXELS:
        sampling = f"labelmap, {n[0]}x{n[1]}x{n[2]} sub-cubes per voxel"
        boxes = _mask_boxes(mask, dose, n)
        return dvh_from_boxes(name, dose, boxes, mask.volume_cc, n, sampling, stacklevel=3, exact_boxes=True)
    m = dose.geometry.ras_to_ijk @ mask.geometry.ijk_to_ras  # mask index -> dose index
    k, j, i = np.nonzero(mask.array)
    centres = np.einsum("nc,mc->nm", np.stack([i, j, k], axis=1).astype(np.float64), m[:3, :3]) + m[:3, 3]
    voxels = (centres, m[:3, :3].T, np.ones(3), mask.geometry.voxel_volume_cc)
    refinement = Refinement(tuple(1.0 / np.asarray(n, dtype=np.float64)))
    sampling = f"labelmap, voxels split where the dose bends, {n[0]}x{n[1]}x{n[2]} sub-cubes in the tails"
    return dvh_from_boxes(
        name, dose, [voxels], mask.volume_cc, n, sampling, stacklevel=3, refinement=refinement, exact_boxes=True
    )
