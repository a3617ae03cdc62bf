"""Report figures with matplotlib (imported lazily; inside Slicer it is installed on first use): slices
with dose colour-wash and contours, and the cumulative DVH with the protocol's limits drawn on it (targets
in volume %, organs at risk in cc on a log axis, where the D0.03cc hot-spot limits can be seen)."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..dose.dvh import MAX_CURVE_LEVELS as MAX_DOSE_LEVELS  # noqa: F401
from ..dose.dvh import curve_step_gy as dvh_dose_step
from ..dose.dvh import parse_metric
from ..protocol import evaluate as ev

CT_WINDOW = (-150.0, 850.0)  # HU shown black..white: soft tissue and bone both readable


def _figure(width_in: float, height_in: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), dpi=110)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", facecolor=fig.get_facecolor())
    return buf.getvalue()


def _dose_colour_bar(fig, lo: float, hi: float) -> None:
    """A vertical colour bar at the right edge: the wash's dose scale in Gy (transparent below ``lo``)."""
    bar = fig.add_axes((0.91, 0.6, 0.025, 0.3))  # top right: clear of the direction labels and scale bar
    bar.imshow(np.linspace(1, 0, 128)[:, None], cmap="jet", aspect="auto", extent=(0, 1, lo, hi), alpha=0.8)
    bar.set_xticks([])
    bar.yaxis.tick_left()
    bar.set_yticks([lo, (lo + hi) / 2, hi])
    bar.set_yticklabels([f"{lo:g}", f"{(lo + hi) / 2:g}", f"{hi:g} Gy"], color="white", fontsize=6.5)
    bar.tick_params(colors="white", length=2, pad=1)
    for spine in bar.spines.values():
        spine.set_color("white")


def slice_png(
    ct: np.ndarray,
    extent_mm: Tuple[float, float],
    title: str,
    labels: Tuple[str, str, str, str],
    contours: Sequence[Tuple[str, np.ndarray, Tuple[float, float, float]]] = (),
    dose: Optional[np.ndarray] = None,
    dose_range: Tuple[float, float] = (15.0, 48.0),
    isodoses: Sequence[Tuple[float, str]] = (),
    overlay: Optional[np.ndarray] = None,
    overlay_opacity: float = 0.5,
    mark_centre: bool = False,
) -> bytes:
    """One slice: CT (window ``CT_WINDOW``), optional MR overlay or dose colour-wash (doses below
    ``dose_range[0]`` transparent), isodose lines and structure outlines. ``labels``: the patient
    directions at the left, right, top and bottom edges."""
    import matplotlib

    w, h = extent_mm
    rows, cols = ct.shape
    # pixel centres in mm, row 0 at the top (the axis is inverted below), as imshow places them
    grid = np.meshgrid((np.arange(cols) + 0.5) * w / cols, (np.arange(rows) + 0.5) * h / rows)
    fig = _figure(4.6, 4.6 * h / w)
    fig.patch.set_facecolor("black")
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    box = (0, w, h, 0)
    ax.imshow(
        np.nan_to_num(ct, nan=-1000),
        cmap="gray",
        vmin=CT_WINDOW[0],
        vmax=CT_WINDOW[1],
        extent=box,
        interpolation="bilinear",
    )
    if overlay is not None:
        finite = overlay[np.isfinite(overlay)]
        hi = np.percentile(finite, 99.5) if finite.size else 1.0
        rgba = matplotlib.colormaps["inferno"](np.clip(np.nan_to_num(overlay) / max(hi, 1e-6), 0, 1))
        rgba[..., 3] = np.where(np.isfinite(overlay), overlay_opacity, 0.0)
        ax.imshow(rgba, extent=box, interpolation="bilinear")
    if dose is not None:
        lo, hi = dose_range
        rgba = matplotlib.colormaps["jet"](np.clip((np.nan_to_num(dose) - lo) / (hi - lo), 0, 1))
        rgba[..., 3] = np.where(np.nan_to_num(dose) >= lo, 0.38, 0.0)
        ax.imshow(rgba, extent=box, interpolation="bilinear")
        for level, color in isodoses:
            if np.nanmax(dose) >= level:
                ax.contour(*grid, np.nan_to_num(dose), levels=[level], colors=[color], linewidths=1.2, linestyles="--")
        _dose_colour_bar(fig, lo, hi)
    for _name, mask, color in contours:
        if mask.any() and not mask.all():
            ax.contour(*grid, mask.astype(float), levels=[0.5], colors=[color], linewidths=1.6)
    style = dict(color="white", fontsize=9, fontweight="bold")
    ax.text(4, h / 2, labels[0], ha="left", va="center", **style)
    ax.text(w - 4, h / 2, labels[1], ha="right", va="center", **style)
    ax.text(w / 2, 4, labels[2], ha="center", va="top", **style)
    ax.text(w / 2, h - 4, labels[3], ha="center", va="bottom", **style)
    if title:
        ax.text(4, 4, title, ha="left", va="top", color="white", fontsize=8)
    if mark_centre:  # the point the slice was placed on (a hot spot)
        ax.plot([w / 2], [h / 2], marker="+", markersize=16, markeredgewidth=2, color="white")
        ax.plot([w / 2], [h / 2], marker="o", markersize=11, fillstyle="none", markeredgewidth=1.2, color="black")
    ax.plot([w - 14, w - 4], [h - 10, h - 10], color="white", linewidth=2)  # 10 mm scale bar
    ax.text(w - 9, h - 12, "10 mm", color="white", fontsize=7, ha="center", va="bottom")
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    return _png(fig)


# -- the DVH figure -------------------------------------------------------------------------------------

#: The dose axis reaches this factor past the highest limit drawn and the highest Dmax shown.
DOSE_AXIS_MARGIN = 1.08
#: The organ-at-risk panel's log volume axis starts here (cc), below the D0.03cc hot-spot volume.
OAR_MIN_CC = 0.01

TARGET_PANEL, OAR_PANEL = "target", "oar"
MANDATORY, OPTIMAL = "mandatory", "optimal"
UPPER, LOWER, TARGET = "upper", "lower", "target"
#: Marker of a limit bound: a triangle pointing to the allowed side (an upper limit allows lower doses),
#: a diamond for a stated value (equals +- tolerance).
_BOUND_MARKER = {UPPER: "<", LOWER: ">", TARGET: "D"}
_EDGE = "#222222"
_FAIL_INK = "#c62828"


@dataclass(frozen=True)
class LimitMarker:
    """One bound of a protocol limit placed on the DVH: at (``dose_gy``, ``volume``) in its panel, the volume
    in % of the structure on the target panel and in cc on the organ-at-risk panel."""

    structure: str
    metric: str
    panel: str  # TARGET_PANEL or OAR_PANEL
    level: str  # MANDATORY or OPTIMAL
    bound: str  # UPPER ("max"), LOWER ("min") or TARGET ("equals")
    dose_gy: float
    volume: float
    advisory: bool  # the row's limit is a literature default a clinic must confirm

    @property
    def gid(self) -> str:
        return f"limit:{self.structure}:{self.metric}:{self.level}:{self.bound}"


@dataclass(frozen=True)
class PlanPoint:
    """A row's plan value on its structure's curve (Dx read at volume x)."""

    structure: str
    metric: str
    panel: str
    dose_gy: float
    volume: float
    status: str
    breach: str = ""  # the mandatory bound a failing value breaks, e.g. " > 30"


@dataclass
class DVHPanel:
    """What one panel of the DVH figure shows: curves (dose levels Gy, volume % or cc) and limits."""

    kind: str  # TARGET_PANEL or OAR_PANEL
    curves: Dict[str, Tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    markers: List[LimitMarker] = field(default_factory=list)
    points: List[PlanPoint] = field(default_factory=list)
    max_dose_gy: float = 0.0  # highest Dmax of the curves shown

    @property
    def unit(self) -> str:
        return "%" if self.kind == TARGET_PANEL else "cc"

    def dose_limit_gy(self, prescription_gy: float) -> float:
        """Right end of the dose axis: past the highest limit drawn, the highest Dmax and the prescription."""
        top = max([self.max_dose_gy, prescription_gy] + [m.dose_gy for m in self.markers])
        return DOSE_AXIS_MARGIN * top


def _shown_structures(result) -> List[str]:
    """The structures the DVH shows, in protocol order: those with a limit (and the cord), targets and organs
    at risk only (CTV and PTV are construction steps, reference structures are not judged)."""
    p = result.protocol
    shown = {c.structure for c in p.constraints} | {"SpinalCord"}
    return [
        n for n, s in p.structures.items() if n in result.dvhs and n in shown and s.kind in (TARGET_PANEL, OAR_PANEL)
    ]


def _metric_volume(metric: str, panel: str, dvh) -> Optional[float]:
    """The volume at which a Dx metric is read, in the panel's unit (% or cc); None for metrics that are not a
    dose at a volume (V metrics, Dmean, Dmax, Dmin, DCxcc critical-volume metrics, unknown names)."""
    if str(metric).strip().upper().startswith("DC"):
        return None
    try:
        spec = parse_metric(metric)
    except ValueError:
        return None
    if spec.kind != "D" or spec.value is None:
        return None
    total = dvh.evaluated_volume_cc
    if panel == TARGET_PANEL:
        return spec.value if spec.relative else 100.0 * spec.value / max(total, 1e-12)
    return spec.value * total / 100.0 if spec.relative else spec.value


def _bounds(limit) -> List[Tuple[str, float]]:
    if limit is None:
        return []
    if limit.target is not None:
        return [(TARGET, float(limit.target))]
    out = [(LOWER, float(limit.lower))] if limit.lower is not None else []
    return out + ([(UPPER, float(limit.upper))] if limit.upper is not None else [])


def dvh_panels(result, step_gy: Optional[float] = None) -> Tuple[List[DVHPanel], float]:
    """The panels of a review's DVH figure and the dose step of their curves: the targets in volume %, the
    organs at risk in cc (each only when it has a curve), with every Dx limit bound that can be placed.

    The curves are ``DVH.curve`` (the exact V at each level, computed in one pass over the samples); the cc
    curve is that fraction of the volume inside the dose grid, i.e. ``DVH.volumes_at_doses_cc`` at the same
    levels, without its cost per level and sample."""
    names = _shown_structures(result)
    if step_gy is None:
        step_gy = dvh_dose_step(max([result.dvhs[n].max for n in names] + [0.0]))
    structures = result.protocol.structures
    panels = {k: DVHPanel(k) for k in (TARGET_PANEL, OAR_PANEL)}
    for name in names:
        dvh = result.dvhs[name]
        panel = panels[structures[name].kind]
        dose, pct = dvh.curve(step_gy)
        volume = pct if panel.kind == TARGET_PANEL else pct * (dvh.evaluated_volume_cc / 100.0)
        panel.curves[name] = (dose, volume)
        panel.max_dose_gy = max(panel.max_dose_gy, float(dvh.max))
    for row in result.rows:
        if row.structure not in names:
            continue
        panel = panels[structures[row.structure].kind]
        dvh = result.dvhs[row.structure]
        volume = _metric_volume(row.metric, panel.kind, dvh)
        if volume is None:
            continue
        c = row.constraint
        for level, limit in ((MANDATORY, c.mandatory), (OPTIMAL, c.optimal)):
            for bound, gy in _bounds(limit):
                panel.markers.append(
                    LimitMarker(row.structure, row.metric, panel.kind, level, bound, gy, volume, not c.confirmed)
                )
        if row.value is not None:
            value = float(row.value)
            breach = ""
            if c.mandatory is not None and c.mandatory.upper is not None and value > c.mandatory.upper:
                breach = f" > {c.mandatory.upper:g}"
            elif c.mandatory is not None and c.mandatory.lower is not None and value < c.mandatory.lower:
                breach = f" < {c.mandatory.lower:g}"
            panel.points.append(PlanPoint(row.structure, row.metric, panel.kind, value, volume, row.status, breach))
    return [p for p in panels.values() if p.curves], step_gy


def _luminance(color) -> float:
    r, g, b = color[:3]
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _ink(color, most: float = 0.5):
    """The colour darkened (hue kept) until it reads on white: for text and the edges of hollow markers."""
    lum = _luminance(color)
    return tuple(float(v) * most / lum for v in color[:3]) if lum > most else tuple(float(v) for v in color[:3])


def _outline(color):
    """A thin dark outline for light colours (yellow, pale blue), which do not show on white alone."""
    from matplotlib import patheffects

    if _luminance(color) <= 0.7:
        return None
    return [patheffects.Stroke(linewidth=3.4, foreground="#4a4a4a"), patheffects.Normal()]


def _marker_style(color, level: str, advisory: bool) -> dict:
    filled = level == MANDATORY
    return dict(
        marker=None,  # set per bound
        s=88 if filled else 80,
        facecolors=[color] if filled else ["white"],
        edgecolors=[_EDGE if filled else _ink(color, 0.55)],
        linewidths=1.0 if filled else 1.9,
        linestyles="--" if advisory else "-",
        alpha=0.5 if advisory else 1.0,
        zorder=6,
    )


def _draw_panel(ax, panel: DVHPanel, colors: Dict[str, Tuple[float, float, float]], prescription_gy: float) -> None:
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    grey = (0.45, 0.45, 0.45)
    for name, (dose, volume) in panel.curves.items():
        color = colors.get(name, grey)
        ax.plot(dose, volume, color=color, linewidth=2.0, label=name, gid=f"curve:{name}", path_effects=_outline(color))
    for m in panel.markers:
        style = _marker_style(colors.get(m.structure, grey), m.level, m.advisory)
        style["marker"] = _BOUND_MARKER[m.bound]
        ax.scatter([m.dose_gy], [m.volume], gid=m.gid, clip_on=False, **style)  # inside the limits set below
    failures = 0
    for pt in panel.points:
        color = colors.get(pt.structure, grey)
        failed = pt.status == ev.FAIL
        ax.plot(
            [pt.dose_gy],
            [pt.volume],
            marker="o",
            markersize=5.5,
            color=color,
            markeredgecolor=_FAIL_INK if failed else _EDGE,
            markeredgewidth=1.6 if failed else 0.8,
            linestyle="",
            zorder=7,
            gid=f"value:{pt.structure}:{pt.metric}",
        )
        if failed:
            right = pt.dose_gy <= 0.6 * panel.dose_limit_gy(prescription_gy)  # else the text goes left
            ax.annotate(
                f"{pt.structure} {pt.metric} {pt.dose_gy:.2f} Gy{pt.breach}",
                (pt.dose_gy, pt.volume),
                xytext=(7 if right else -7, 9 + 14 * failures),  # stacked: two may fail at one point
                textcoords="offset points",
                ha="left" if right else "right",
                fontsize=9,
                fontweight="bold",
                color=_FAIL_INK,
                bbox=dict(boxstyle="round,pad=0.2", facecolor="white", edgecolor="none", alpha=0.85),
                zorder=8,
            )
            failures += 1
    x_max = panel.dose_limit_gy(prescription_gy)
    ax.set_xlim(0, x_max)
    if panel.kind == TARGET_PANEL:
        ax.set_ylim(0, 105)
        ax.set_ylabel("Volume (% of structure)", fontsize=10.5)
        ax.set_title("Targets: volume %", fontsize=10.5, loc="left")
    else:
        volumes = [float(v[0]) for _, v in panel.curves.values() if len(v)] + [m.volume for m in panel.markers]
        y_min = min([OAR_MIN_CC] + [0.5 * m.volume for m in panel.markers if m.volume > 0])
        y_max = max(volumes + [1.0]) * 1.8
        ax.set_yscale("log", nonpositive="clip")
        ax.set_ylim(y_min, y_max)
        ticks = [t * 10.0**k for k in range(-4, 6) for t in (1.0, 3.0)]
        ax.yaxis.set_major_locator(FixedLocator([t for t in ticks if y_min <= t <= y_max]))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_ylabel("Volume (cc, log scale)", fontsize=10.5)
        ax.set_title("Organs at risk: absolute volume", fontsize=10.5, loc="left")
    ax.axvline(prescription_gy, color="#555555", linewidth=1.0, linestyle=":", zorder=1, gid="prescription")
    ax.text(
        prescription_gy,
        1.0,
        f" Rx {prescription_gy:g} Gy",
        transform=ax.get_xaxis_transform(),
        ha="left",
        va="top",
        fontsize=9,
        color="#333333",
        bbox=dict(boxstyle="square,pad=0.15", facecolor="white", edgecolor="none", alpha=0.8),
    )
    ax.set_xlabel("Dose (Gy)", fontsize=10.5)
    ax.tick_params(labelsize=9.5)
    ax.grid(True, which="major", alpha=0.3)
    names = list(panel.curves)
    ax.legend(  # under the panel: inside it would hide curves or limits
        loc="upper center",
        bbox_to_anchor=(0.5, -0.13),
        ncol=min(3, len(names)),
        fontsize=10,
        frameon=False,
        labelcolor=[_ink(colors.get(n, grey)) for n in names],
        handlelength=1.6,
        columnspacing=1.2,
    )


def _marker_key(fig) -> None:
    """The key of the marker shapes, under the panels."""
    from matplotlib.lines import Line2D

    def key(marker, filled, label, advisory=False):
        return Line2D(
            [],
            [],
            marker=marker,
            markersize=8,
            linestyle="",
            color="0.55" if filled else "white",
            markeredgecolor=_EDGE if filled else "0.35",
            markeredgewidth=1.0 if filled else 1.7,
            alpha=0.5 if advisory else 1.0,
            label=label,
        )

    handles = [
        key("<", True, "mandatory max"),
        key(">", True, "mandatory min"),
        key("<", False, "optimal max"),
        key(">", False, "optimal min"),
        key("D", False, "optimal value"),
        key("<", True, "advisory (unconfirmed)", advisory=True),
        Line2D(
            [], [], marker="o", markersize=5.5, color="0.55", markeredgecolor=_EDGE, linestyle="", label="plan value"
        ),
    ]
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncol=len(handles),
        fontsize=9,
        handletextpad=0.3,
        columnspacing=1.2,
        title="Limits (in the colour of their structure)",
        title_fontsize=9,
        framealpha=1.0,
        edgecolor="0.8",
    )


def review_dvh_figure(result, step_gy: Optional[float] = None):
    """The DVH figure of a review (matplotlib Figure), or None without DVHs: the targets in volume % (left),
    the organs at risk in cc on a log axis (right, so that D0.03cc and Dxcc limits show), each protocol limit
    a marker in its structure's colour at (limit dose, metric volume), the prescription line labelled."""
    if not result.dvhs:
        return None
    panels, _ = dvh_panels(result, step_gy)
    if not panels:
        return None
    p = result.protocol
    colors = {n: tuple(s.color) for n, s in p.structures.items()}
    fig = _figure(4.9 * len(panels) + 0.2, 5.4)
    fig.set_layout_engine("constrained", w_pad=0.08, wspace=0.06)
    for i, panel in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        ax.set_gid(f"dvh-{panel.kind}")
        _draw_panel(ax, panel, colors, p.prescription_gy)
    _marker_key(fig)
    return fig


def review_dvh_png(result) -> Optional[bytes]:
    """The DVH figure of a review as PNG (``review_dvh_figure``), or None without DVHs."""
    fig = review_dvh_figure(result)
    return None if fig is None else _png(fig)


def trial_bands_figure(rows):
    """One strip per result the trial reported: its range (grey band), median (black tick) and the plan's value
    (dot, red when outside the range). Volumes on a log axis (1-470 cc)."""
    if not rows:
        return None
    fig = _figure(7.6, 0.85 * len(rows) + 0.4)
    axes = fig.subplots(len(rows), 1, squeeze=False, gridspec_kw={"hspace": 1.3})[:, 0]
    for ax, row in zip(axes, rows):
        values = [row.low, row.high] + ([row.value] if row.value is not None else [])
        lo, hi = min(values), max(values)
        if row.unit == "cc":
            from matplotlib.ticker import FixedLocator, NullFormatter

            ax.set_xscale("log")
            ax.set_xlim(lo / 1.6, hi * 1.6)
            ax.xaxis.set_major_locator(FixedLocator([1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]))
            ax.xaxis.set_major_formatter(lambda v, _pos: f"{v:g}")
            ax.xaxis.set_minor_formatter(NullFormatter())
        else:
            pad = 0.12 * (hi - lo or 1.0)
            ax.set_xlim(lo - pad, hi + pad)
        ax.axvspan(row.low, row.high, color="#cfd8dc", zorder=1)
        ax.axvline(row.median, color="#263238", lw=2, zorder=2)
        if row.value is not None:
            inside = row.low <= row.value <= row.high
            ax.plot([row.value], [0.5], "o", ms=9, color="#2e7d32" if inside else "#d32f2f", zorder=3)
        ax.set_yticks([])
        ax.set_ylim(0, 1)
        ax.set_ylabel(row.label, rotation=0, ha="right", va="center", fontsize=8)
        ax.tick_params(axis="x", labelsize=7, length=2)
        ax.set_xlabel(row.unit, fontsize=7, labelpad=1)
    fig.suptitle("Trial range (grey), median (black), this plan (dot)", fontsize=8, y=0.995)
    return fig


def trial_bands_png(rows) -> Optional[bytes]:
    fig = trial_bands_figure(rows)
    return None if fig is None else _png(fig)
