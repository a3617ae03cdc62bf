"""The trial's reported results beside the plan (report/content.py trial_rows, reference_sentences; the
figure): values taken from the review itself, positions against the protocol file's ranges."""

import dataclasses

import pytest

from SIBSpineSBRTLib.dose.grid import DoseGrid
from SIBSpineSBRTLib.geometry.masks import Mask
from SIBSpineSBRTLib.protocol.model import TrialResult
from SIBSpineSBRTLib.report import content, figures
from SIBSpineSBRTLib.review.pipeline import CaseInput, review_case


@pytest.fixture(scope="module")
def reviewed(demo_case, protocol):
    c = demo_case
    masks = {n: Mask(m, c.ct_geometry, n) for n, m in c.segments.items()}
    return review_case(CaseInput(c.name, c.level, masks, DoseGrid(c.dose_gy, c.dose_geometry)), protocol)


def test_trial_rows_hold_the_papers_numbers_and_the_plans_values(reviewed):
    rows = {r.label: r for r in content.trial_rows(reviewed)}
    assert set(rows) == {"GTV D50%", "GTV D98%", "PTV_Eval Volume", "GTV Volume"}
    assert (rows["GTV D50%"].median, rows["GTV D50%"].low, rows["GTV D50%"].high) == (43.2, 41.3, 45.7)
    assert (rows["PTV_Eval Volume"].median, rows["PTV_Eval Volume"].high) == (70.2, 468.7)
    assert rows["GTV D50%"].value == pytest.approx(reviewed.dvhs["GTV"].metric("D50%"))
    assert rows["PTV_Eval Volume"].value == pytest.approx(reviewed.volumes["PTV_Eval"].mask.volume_cc)
    assert rows["GTV Volume"].unit == "cc" and rows["GTV D98%"].trial == "median 32.8 Gy (25.3\u201341.4)"


def test_position_against_the_range():
    t = TrialResult("GTV", "D50%", 43.2, 41.3, 45.7)
    assert t.position(41.2) == "below the trial's range"
    assert t.position(41.3) == t.position(45.7) == "within the trial's range"
    assert t.position(45.8) == "above the trial's range"


def test_reference_dose_sentence(reviewed):
    d98 = reviewed.dvhs["GTV"].metric("D98%")
    (sentence,) = content.reference_sentences(reviewed)
    side = "at or above" if d98 >= 25.3 else "below"
    assert sentence.startswith(f"GTV D98% = {d98:.1f} Gy is {side} 25.3 Gy (14 Gy x 1")


def test_plan_outside_the_range_is_drawn_red(reviewed):
    rows = content.trial_rows(reviewed)
    low = dataclasses.replace(rows[0], value=rows[0].low - 1.0)
    fig = figures.trial_bands_figure([low, *rows[1:]])
    dot = [line for line in fig.axes[0].lines if line.get_marker() == "o"][0]
    assert dot.get_color() == "#d32f2f" and dot.get_xdata()[0] == pytest.approx(low.value)
    inside = [line for line in fig.axes[1].lines if line.get_marker() == "o"][0]
    assert inside.get_color() == "#2e7d32"
    assert figures.trial_bands_png(rows)[:4] == b"\x89PNG" and figures.trial_bands_png([]) is None


def test_hot_spot_slices_go_through_the_oar_nearest_its_limit(demo_case, protocol):
    """The report's hot-spot slices are centred on the highest dose of the cord PRV or the thecal sac,
    whichever is nearer its limit; the point is the mask voxel with the highest sampled dose."""
    import numpy as np

    from SIBSpineSBRTLib.report.html_report import ImageInput, _hot_spot, make_images

    c = demo_case
    masks = {n: Mask(m, c.ct_geometry, n) for n, m in c.segments.items()}
    dose = DoseGrid(c.dose_gy, c.dose_geometry)
    result = review_case(CaseInput(c.name, c.level, masks, dose), protocol)
    ratio = {n: result.dvhs[n].max / limit for n, limit in (("SpinalCord_PRV02", 25.0), ("ThecalSac", 30.0))}
    assert content.hot_spot_structure(result) == max(ratio, key=ratio.get)
    prv = result.volumes["SpinalCord_PRV02"].mask
    spot = _hot_spot(prv, dose)
    values, _ = dose.sample(prv.geometry.ijk_to_ras_points(np.argwhere(prv.array)[:, ::-1].astype(float)))
    assert dose.sample(spot[None])[0][0] == pytest.approx(values.max())
    images = make_images(result, ImageInput(c.ct, c.ct_geometry))
    assert {"axial_hotspot", "sagittal_hotspot"} <= set(images)
