"""The review pipeline on arrays: planning volumes by level, metrics against analytic doses, missing inputs."""

import warnings

import numpy as np
import pytest

from SIBSpineSBRTLib.dose.grid import DoseGrid
from SIBSpineSBRTLib.geometry.grid import ImageGeometry
from SIBSpineSBRTLib.geometry.margins import Margins, expand
from SIBSpineSBRTLib.geometry.masks import Mask
from SIBSpineSBRTLib.protocol import evaluate as ev
from SIBSpineSBRTLib.review.pipeline import CaseInput, review_case
from SIBSpineSBRTLib.review.planning_volumes import build_planning_volumes
from SIBSpineSBRTLib.warnings import ProtocolWarning

G = ImageGeometry((40, 48, 48), (-23.5, -23.5, -24.375), (1.0, 1.0, 1.25))


def box(lo_ras, hi_ras):
    """Voxels whose centre lies in an RAS box (identity directions)."""
    k, j, i = np.indices(G.shape)
    p = G.ijk_to_ras_points(np.stack([i.ravel(), j.ravel(), k.ravel()], 1)).reshape(*G.shape, 3)
    return np.all((p >= lo_ras) & (p <= hi_ras), axis=-1)


def toy_masks(sacral=False):
    m = {
        "GTV": box((-4, 2, -4), (4, 8, 4)),
        "CTV": box((-10, 0, -10), (10, 12, 10)),
        "SpinalCord": box((-2, -8, -25), (2, -4, 25)),  # cord, sac and canal run through every slice
        "ThecalSac": box((-4, -10, -25), (4, -2, 25)),
    }
    canal = box((-6, -12, -25), (6, 0, 25))
    if sacral:
        m["SacralCanal"] = canal
        m["SacralForamina"] = box((-10, 0, -3), (10, 2, 3))
    else:
        m["SpinalCanal"] = canal
    return {n: Mask(a, G, n) for n, a in m.items()}


def test_planning_volumes_thoracic(protocol):
    masks = toy_masks()
    vols, problems = build_planning_volumes(protocol, masks, "T8")
    assert problems == {}
    ptv = expand(masks["CTV"], Margins.axial_si(2, 5))
    assert np.array_equal(vols["PTV"].mask.array, ptv.array)
    assert np.array_equal(vols["PTV_Eval"].mask.array, ptv.array & ~masks["SpinalCanal"].array)
    assert np.array_equal(vols["SpinalCord_PRV02"].mask.array, expand(masks["SpinalCord"], Margins.isotropic(2)).array)
    assert "CTV + 2 mm axial, 5 mm SI" in vols["PTV"].recipe and "T8" in vols["PTV"].recipe
    assert all(":" not in v.recipe and "|" not in v.recipe for v in vols.values())


def test_planning_volumes_sacral_subtract_canal_and_foramina(protocol):
    masks = toy_masks(sacral=True)
    vols, problems = build_planning_volumes(protocol, masks, "S2")
    cut = masks["SacralCanal"].array | masks["SacralForamina"].array
    assert np.array_equal(vols["PTV_Eval"].mask.array, vols["PTV"].mask.array & ~cut)
    # a thoracic level asks for the spinal canal, which this sacral case does not have
    _, problems = build_planning_volumes(protocol, masks, "T8")
    assert "SpinalCanal" in problems["PTV_Eval"]


def test_margins_override(protocol):
    masks = toy_masks()
    vols, _ = build_planning_volumes(protocol, masks, "T8", ptv_margins=Margins.isotropic(3), prv_margin_mm=0)
    assert np.array_equal(vols["PTV"].mask.array, expand(masks["CTV"], Margins.isotropic(3)).array)
    assert np.array_equal(vols["SpinalCord_PRV02"].mask.array, masks["SpinalCord"].array)


def test_thecal_sac_warning_below_l2(protocol):
    masks = toy_masks()
    del masks["ThecalSac"]
    for level, expected in (("L1", False), ("L2", False), ("L3", True), ("S1", True), ("L2-L3", False)):
        m = dict(masks)
        if level.startswith("S"):
            m["SacralCanal"] = m["SpinalCanal"]
            m["SacralForamina"] = m["SpinalCanal"]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            build_planning_volumes(protocol, m, level)
        hit = any(issubclass(w.category, ProtocolWarning) and "thecal sac" in str(w.message) for w in caught)
        assert hit == expected, level


def test_uniform_dose_gives_that_dose_everywhere(protocol):
    dose = DoseGrid(np.full((20, 20, 20), 35.0), ImageGeometry((20, 20, 20), (-30, -30, -30), (3, 3, 3)))
    res = review_case(CaseInput("uniform", "T8", toy_masks(), dose), protocol)
    for r in res.rows:
        assert r.value == pytest.approx(35.0, abs=1e-6), (r.structure, r.metric)
    status = {(r.structure, r.metric): r.status for r in res.rows}
    assert status[("PTV_Eval", "D90%")] == ev.FAIL  # 35 Gy > 30.3 Gy
    assert status[("SpinalCord_PRV02", "D0.03cc")] == ev.FAIL
    assert status[("ThecalSac", "D0.03cc")] == ev.FAIL
    assert status[("GTV", "D50%")] == ev.FAIL  # 35 Gy < the 36 Gy mandatory minimum
    assert status[("GTV", "D90%")] == ev.ACCEPTABLE  # 35 Gy meets the 27 Gy mandatory, not the 36 Gy optimal
    assert status[("GTV", "D98%")] == ev.OPTIMAL  # 35 Gy >= 27 Gy

    assert res.verdict == ev.FAIL


def test_linear_dose_along_si_gives_analytic_gtv_median(protocol):
    # Dose = 40 + 1 Gy/mm * S. The GTV's voxel cubes fill a box symmetric about S = 0, spanning
    # +-h in S, so its dose is uniform on [40 - h, 40 + h] and Dx% = 40 + h * (1 - 2x/100) exactly.
    dg = ImageGeometry((30, 10, 10), (-20, -20, -30), (5, 5, 2))
    z = dg.ijk_to_ras_points(np.stack(np.meshgrid(0, 0, np.arange(30), indexing="ij"), -1).reshape(-1, 3))[:, 2]
    dose = DoseGrid(np.broadcast_to((40 + z)[:, None, None], dg.shape), dg)
    res = review_case(CaseInput("linear", "T8", toy_masks(), dose), protocol)
    row = {(r.structure, r.metric): r.value for r in res.rows}
    k = np.nonzero(toy_masks()["GTV"].array.any(axis=(1, 2)))[0]
    h = (k.max() - k.min() + 1) * G.spacing[2] / 2
    assert G.ijk_to_ras_points([[0, 0, (k.max() + k.min()) / 2]])[0, 2] == pytest.approx(0.0)
    for x in (2, 50, 90, 98):
        assert row[("GTV", f"D{x}%")] == pytest.approx(40 + h * (1 - 2 * x / 100), abs=0.02), x


def test_missing_cord_is_not_evaluable_and_named(protocol):
    masks = toy_masks()
    del masks["SpinalCord"]
    dose = DoseGrid(np.full((20, 20, 20), 20.0), ImageGeometry((20, 20, 20), (-30, -30, -30), (3, 3, 3)))
    res = review_case(CaseInput("nocord", "T8", masks, dose), protocol)
    prv = [r for r in res.rows if r.structure == "SpinalCord_PRV02"][0]
    assert prv.status == ev.NOT_EVALUABLE and prv.value is None
    assert "SpinalCord" in prv.message and "Segments found: GTV, CTV, ThecalSac, SpinalCanal" in prv.message
    assert len([r for r in res.rows if r.constraint.required]) == 9
    assert res.verdict in (ev.INCOMPLETE, ev.FAIL)


def test_missing_dose_makes_every_row_not_evaluable(protocol):
    res = review_case(CaseInput("nodose", "T8", toy_masks(), None, "No dose here."), protocol)
    assert {r.status for r in res.rows} == {ev.NOT_EVALUABLE}
    assert res.verdict == ev.INCOMPLETE and "No dose here." in res.messages


def test_dose_grid_not_overlapping_the_structures(protocol):
    far = DoseGrid(np.full((5, 5, 5), 30.0), ImageGeometry((5, 5, 5), (500, 500, 500), (2, 2, 2)))
    res = review_case(CaseInput("far", "T8", toy_masks(), far), protocol)
    assert {r.status for r in res.rows} == {ev.NOT_EVALUABLE}
    assert any("do not overlap" in m for m in res.messages)


def test_inputs_are_not_modified(protocol):
    masks = toy_masks()
    before = {n: m.array.copy() for n, m in masks.items()}
    dose = DoseGrid(np.full((20, 20, 20), 20.0), ImageGeometry((20, 20, 20), (-30, -30, -30), (3, 3, 3)))
    review_case(CaseInput("same", "T8", masks, dose), protocol)
    assert all(np.array_equal(before[n], masks[n].array) for n in masks)
