"""The review's DVH figure: targets in volume %, organs at risk in cc on a log axis, so that the D0.03cc
hot-spot limits are points one can see; each limit marked in its structure's colour, nothing clipped."""

import dataclasses

import numpy as np
import pytest

from SIBSpineSBRTLib.dose.grid import DoseGrid
from SIBSpineSBRTLib.geometry.masks import Mask
from SIBSpineSBRTLib.protocol import evaluate as ev
from SIBSpineSBRTLib.report import figures as f
from SIBSpineSBRTLib.review.demo import build_teaching_case
from SIBSpineSBRTLib.review.pipeline import CaseInput, review_case


@pytest.fixture(scope="module")
def lumbar_fail(protocol):
    """The lumbar teaching case with the failing plan: thecal sac D0.03cc 32.39 Gy against its 30 Gy limit."""
    c = build_teaching_case("lumbar", "fail")
    masks = {n: Mask(m, c.ct_geometry, n) for n, m in c.segments.items()}
    return review_case(CaseInput(c.name, c.level, masks, DoseGrid(c.dose_gy, c.dose_geometry)), protocol)


@pytest.fixture(scope="module")
def figure(lumbar_fail):
    return f.review_dvh_figure(lumbar_fail)


def axes_of(fig, kind):
    (ax,) = [a for a in fig.axes if a.get_gid() == f"dvh-{kind}"]
    return ax


def artist(ax, gid):
    found = [a for a in list(ax.collections) + list(ax.lines) if a.get_gid() == gid]
    assert len(found) == 1, (gid, [a.get_gid() for a in ax.collections])
    return found[0]


def markers(ax):
    return {c.get_gid(): c for c in ax.collections if str(c.get_gid()).startswith("limit:")}


def test_thecal_sac_failure_is_visible(lumbar_fail, figure):
    row = next(r for r in lumbar_fail.rows if (r.structure, r.metric) == ("ThecalSac", "D0.03cc"))
    assert row.status == ev.FAIL and row.value == pytest.approx(32.39, abs=0.01)
    oar = axes_of(figure, "oar")
    assert oar.get_yscale() == "log" and "cc" in oar.get_ylabel()
    # the 30 Gy limit is a point at (30 Gy, 0.03 cc), filled in the thecal sac's colour, inside the axes
    mark = artist(oar, "limit:ThecalSac:D0.03cc:mandatory:upper")
    ((x, y),) = mark.get_offsets()
    assert (x, y) == pytest.approx((30.0, 0.03))
    (x0, x1), (y0, y1) = oar.get_xlim(), oar.get_ylim()
    assert x0 < x < x1 and y0 < y < y1
    colour = lumbar_fail.protocol.structures["ThecalSac"].color
    assert tuple(mark.get_facecolors()[0][:3]) == pytest.approx(tuple(colour))
    # the curve passes above the marker (more than 0.03 cc gets 30 Gy) and reaches 0.03 cc at the plan value
    dose, cc = artist(oar, "curve:ThecalSac").get_data()
    assert np.interp(30.0, dose, cc) > 0.1
    assert np.interp(row.value, dose, cc) == pytest.approx(0.03, rel=0.05)
    ((vx, vy),) = [line.get_xydata()[0] for line in oar.lines if line.get_gid() == "value:ThecalSac:D0.03cc"]
    assert (vx, vy) == pytest.approx((row.value, 0.03))
    assert any("ThecalSac D0.03cc 32.39 Gy > 30" in t.get_text() for t in oar.texts)


def test_oar_curves_are_the_exact_volume_in_cc(lumbar_fail, figure):
    oar, target = axes_of(figure, "oar"), axes_of(figure, "target")
    for name in ("ThecalSac", "SpinalCord_PRV02", "GreatVessels"):
        dvh = lumbar_fail.dvhs[name]
        dose, cc = artist(oar, f"curve:{name}").get_data()
        if dvh.max > 30.0:  # each curve runs to its Dmax
            i = int(np.argmin(np.abs(dose - 30.0)))
            assert dose[i] == pytest.approx(30.0, abs=1e-9)  # 30 Gy is one of the levels
            assert cc[i] == pytest.approx(dvh.volume_at_dose_cc(30.0), rel=1e-9, abs=1e-12)
        for j in (0, len(dose) // 3, 2 * len(dose) // 3):  # and so is every level: V(D) of the DVH, in cc
            assert cc[j] == pytest.approx(dvh.volume_at_dose_cc(dose[j]), rel=1e-9, abs=1e-12)
        assert cc[-1] == 0.0 and dose[-1] > dvh.max  # down to nothing past Dmax
    gtv = lumbar_fail.dvhs["GTV"]
    dose, pct = artist(target, "curve:GTV").get_data()
    i = len(dose) - 5
    assert pct[i] == pytest.approx(100 * gtv.volume_at_dose_cc(dose[i]) / gtv.evaluated_volume_cc, rel=1e-9)
    # the panels split by the protocol's kinds
    kinds = lumbar_fail.protocol.structures
    for ax, kind in ((oar, "oar"), (target, "target")):
        names = [line.get_gid()[6:] for line in ax.lines if str(line.get_gid()).startswith("curve:")]
        assert names and all(kinds[n].kind == kind for n in names)
    assert "CTV" not in [line.get_gid() for line in target.lines]  # construction steps are not shown


def test_every_limit_is_placed_inside_the_axes(lumbar_fail, figure):
    panels, _ = f.dvh_panels(lumbar_fail)
    placed = {m.gid: m for p in panels for m in p.markers}
    # every Dx row of a shown structure gives a marker for each bound of its limits
    expected = set()
    for r in lumbar_fail.rows:
        if r.structure in lumbar_fail.dvhs and r.metric.startswith("D") and r.metric[1].isdigit():
            for level, limit in (("mandatory", r.constraint.mandatory), ("optimal", r.constraint.optimal)):
                if limit is not None:
                    bounds = ["target"] if limit.target is not None else []
                    bounds += [b for b, v in (("lower", limit.lower), ("upper", limit.upper)) if v is not None]
                    expected |= {f"limit:{r.structure}:{r.metric}:{level}:{b}" for b in bounds}
    assert set(placed) == expected and "limit:GTV:D2%:mandatory:upper" in expected
    for kind in ("target", "oar"):
        ax = axes_of(figure, kind)
        (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
        drawn = markers(ax)
        assert drawn and all(placed[g].panel == kind for g in drawn)
        for gid, mark in drawn.items():
            ((x, y),) = mark.get_offsets()
            assert (x, y) == pytest.approx((placed[gid].dose_gy, placed[gid].volume))
            assert x0 < x < x1 and y0 < y < y1, gid
            assert x <= x1 / f.DOSE_AXIS_MARGIN + 1e-9  # the margin past the highest limit
        curves = [line for line in ax.lines if str(line.get_gid()).startswith("curve:")]
        top = max(lumbar_fail.dvhs[c.get_gid()[6:]].max for c in curves)
        assert x1 >= f.DOSE_AXIS_MARGIN * top - 1e-9  # past the highest Dmax too
    # 51 Gy (the D2% maximum) is not on the axis edge; a Dx% limit sits at x %
    target = axes_of(figure, "target")
    ((x, y),) = artist(target, "limit:GTV:D2%:mandatory:upper").get_offsets()
    assert (x, y) == pytest.approx((51.0, 2.0)) and target.get_xlim()[1] >= 55.0
    ((x, y),) = artist(target, "limit:PTV_Eval:D90%:optimal:target").get_offsets()
    assert (x, y) == pytest.approx((30.0, 90.0))


def test_marker_styles_say_level_and_advice(lumbar_fail, figure):
    colours = lumbar_fail.protocol.structures
    for ax in figure.axes:
        for gid, mark in markers(ax).items():
            _, name, _metric, level, bound = gid.split(":")
            face = tuple(mark.get_facecolors()[0])
            if level == "mandatory":  # filled in the structure's colour
                assert face[:3] == pytest.approx(tuple(colours[name].color))
            else:  # hollow
                assert face[:3] == pytest.approx((1.0, 1.0, 1.0))
    oar = axes_of(figure, "oar")
    advisory = artist(oar, "limit:GreatVessels:D0.03cc:mandatory:upper")  # a literature default to confirm
    confirmed = artist(oar, "limit:ThecalSac:D0.03cc:mandatory:upper")
    assert advisory.get_alpha() < 1.0 and (confirmed.get_alpha() or 1.0) == 1.0
    assert advisory.get_linestyle()[0][1] is not None and confirmed.get_linestyle()[0][1] is None  # dashed
    optimal_min = artist(axes_of(figure, "target"), "limit:GTV:D50%:optimal:lower")
    assert tuple(optimal_min.get_facecolors()[0][:3]) == pytest.approx((1.0, 1.0, 1.0))


def test_prescription_labels_and_legends(lumbar_fail, figure):
    structures = lumbar_fail.protocol.structures
    for kind in ("target", "oar"):
        ax = axes_of(figure, kind)
        assert any(t.get_text().strip() == "Rx 30 Gy" for t in ax.texts)
        assert any(line.get_gid() == "prescription" and line.get_xdata()[0] == 30.0 for line in ax.lines)
        names = [t.get_text() for t in ax.get_legend().get_texts()]
        assert names and all(structures[n].kind == kind for n in names)
        for handle, n in zip(ax.get_legend().legend_handles, names):
            assert tuple(handle.get_color()) == pytest.approx(tuple(structures[n].color))
    assert "ThecalSac" in [t.get_text() for t in axes_of(figure, "oar").get_legend().get_texts()]
    key = [t.get_text() for t in figure.legends[0].get_texts()]
    assert {"mandatory max", "optimal min", "plan value"} <= set(key)


def test_metrics_that_cannot_be_placed_are_skipped(lumbar_fail):
    row = next(r for r in lumbar_fail.rows if (r.structure, r.metric) == ("ThecalSac", "D0.03cc"))
    extra = [
        dataclasses.replace(row, constraint=dataclasses.replace(row.constraint, metric=m))
        for m in ("V20Gy", "Dmax", "Dmean", "DC1.2cc", "DC0.5cc")
    ]
    panels, _ = f.dvh_panels(dataclasses.replace(lumbar_fail, rows=list(lumbar_fail.rows) + extra))
    metrics = {m.metric for p in panels for m in p.markers}
    assert "D0.03cc" in metrics and not metrics & {"V20Gy", "Dmax", "Dmean", "DC1.2cc", "DC0.5cc"}
    # a Dxcc limit of a target and a Dx% limit of an organ at risk are converted to the panel's unit
    gtv = dataclasses.replace(row, constraint=dataclasses.replace(row.constraint, structure="GTV", metric="D1cc"))
    sac = dataclasses.replace(row, constraint=dataclasses.replace(row.constraint, metric="D10%"))
    panels, _ = f.dvh_panels(dataclasses.replace(lumbar_fail, rows=[gtv, sac]))
    placed = {(m.structure, m.metric): m for p in panels for m in p.markers}
    assert placed["GTV", "D1cc"].volume == pytest.approx(100 / lumbar_fail.dvhs["GTV"].evaluated_volume_cc)
    assert placed["ThecalSac", "D10%"].volume == pytest.approx(lumbar_fail.dvhs["ThecalSac"].evaluated_volume_cc / 10)


@pytest.mark.parametrize("max_gy", [1e-3, 0.7, 13.5, 44.09, 51.0, 99.99, 4.4e4, 3.3e7])
def test_dose_step_bounds_the_levels(max_gy):
    step = f.dvh_dose_step(max_gy)
    levels = int(np.floor(max_gy / step)) + 2  # as DVH.curve makes them
    assert 200 <= levels <= f.MAX_DOSE_LEVELS
    mantissa = step / 10 ** np.floor(np.log10(step))
    assert min(abs(mantissa - m) for m in (1, 2, 2.5, 5, 10)) < 1e-9  # a round step: 30 Gy is a level


def test_a_dose_a_thousand_times_larger_keeps_the_curves_small(lumbar_fail):
    scaled = dataclasses.replace(lumbar_fail, dvhs={n: d.scaled(1000.0) for n, d in lumbar_fail.dvhs.items()})
    panels, step = f.dvh_panels(scaled)
    assert step == pytest.approx(100.0)
    for panel in panels:
        for name, (dose, volume) in panel.curves.items():
            assert len(dose) == len(volume) <= f.MAX_DOSE_LEVELS
            assert dose[-1] > scaled.dvhs[name].max
    fig = f.review_dvh_figure(scaled)
    assert axes_of(fig, "oar").get_xlim()[1] >= 1000 * lumbar_fail.dvhs["ThecalSac"].max
    png = f.review_dvh_png(scaled)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_dose_no_figure(lumbar_fail):
    assert f.review_dvh_png(dataclasses.replace(lumbar_fail, dvhs={})) is None
