"""Report figures with matplotlib (imported lazily; inside Slicer it is installed on first use): slices
with dose colour-wash and contours, and the cumulative DVH with the protocol's limits drawn on it."""

from __future__ import annotations

import io
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

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
    ax.plot([w - 14, w - 4], [h - 10, h - 10], color="white", linewidth=2)  # 10 mm scale bar
    ax.text(w - 9, h - 12, "10 mm", color="white", fontsize=7, ha="center", va="bottom")
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    return _png(fig)


def dvh_png(
    curves: Dict[str, Tuple[np.ndarray, np.ndarray]],
    colors: Dict[str, Tuple[float, float, float]],
    rows: List[ev.RowResult],
    volumes_cc: Dict[str, float],
    prescription_gy: float,
) -> bytes:
    """Cumulative DVHs (percent of volume receiving at least a dose) with each Dx limit drawn where it
    applies: a triangle at (limit dose, volume x) pointing to the allowed side (right: a minimum; left: a
    maximum), and the plan's value as a dot."""
    fig = _figure(8.4, 4.4)
    ax = fig.add_subplot(1, 1, 1)
    for name, (dose, vol) in curves.items():
        ax.plot(dose, vol, color=colors.get(name, (0.3, 0.3, 0.3)), linewidth=1.8, label=name)
    for r in rows:
        spec = parse_metric(r.metric)
        if spec.kind != "D" or r.structure not in curves:
            continue
        pct = spec.value if spec.relative else 100.0 * spec.value / max(volumes_cc.get(r.structure, 0.0), 1e-9)
        color = colors.get(r.structure, (0.3, 0.3, 0.3))
        for limit, edge in ((r.constraint.mandatory, "#d32f2f"), (r.constraint.optimal, "#2e9e40")):
            if limit is None:
                continue
            bounds = [(limit.target, "v")] if limit.target is not None else []
            bounds += [(limit.lower, ">")] if limit.lower is not None else []
            bounds += [(limit.upper, "<")] if limit.upper is not None else []
            for gy, marker in bounds:
                ax.plot([gy], [pct], marker=marker, markersize=8, color=edge, markeredgecolor="black", linestyle="")
        if r.value is not None:
            ax.plot([r.value], [pct], marker="o", markersize=5, color=color, markeredgecolor="black")
    ax.axvline(prescription_gy, color="#555555", linewidth=0.8, linestyle=":")
    ax.set_xlabel("Dose (Gy)")
    ax.set_ylabel("Volume (%)")
    ax.set_ylim(0, 102)
    ax.set_xlim(0, max([d[-1] for d, _ in curves.values() if len(d)] + [prescription_gy * 1.7]))
    ax.grid(True, alpha=0.3)
    from matplotlib.lines import Line2D

    legend_extra = [
        Line2D([], [], marker=">", color="#d32f2f", markeredgecolor="black", linestyle="", label="mandatory minimum"),
        Line2D([], [], marker="<", color="#d32f2f", markeredgecolor="black", linestyle="", label="mandatory maximum"),
        Line2D([], [], marker=">", color="#2e9e40", markeredgecolor="black", linestyle="", label="optimal minimum"),
        Line2D([], [], marker="<", color="#2e9e40", markeredgecolor="black", linestyle="", label="optimal maximum"),
        Line2D([], [], marker="o", color="white", markeredgecolor="black", linestyle="", label="plan value"),
    ]
    handles, _ = ax.get_legend_handles_labels()
    ax.legend(handles=handles + legend_extra, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), framealpha=0.9)
    fig.tight_layout()
    return _png(fig)


def review_dvh_png(result) -> Optional[bytes]:
    """The DVH figure of a review (its evaluated structures, the protocol's limits), or None without DVHs."""
    if not result.dvhs:
        return None
    p = result.protocol
    colors = {n: s.color for n, s in p.structures.items()}
    volumes = {n: d.evaluated_volume_cc for n, d in result.dvhs.items()}
    return dvh_png(result.dvh_curves(), colors, result.rows, volumes, p.prescription_gy)
