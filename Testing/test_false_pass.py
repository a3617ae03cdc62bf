"""A review never passes what it did not check: each false-PASS path a physicist found, rebuilt from our
phantoms, must end in something other than ``pass`` and name the problem (scenarios first, then fixes).

The DICOM/CLI versions of the same paths are in ``test_false_pass_cli.py``."""

import copy
import json

import numpy as np
import pytest

from SIBSpineSBRTLib.dose.grid import DoseError, DoseGrid
from SIBSpineSBRTLib.geometry.grid import ImageGeometry
from SIBSpineSBRTLib.geometry.masks import Mask
from SIBSpineSBRTLib.protocol import evaluate as ev
from SIBSpineSBRTLib.protocol.model import PROTOCOL_DIR, ProtocolError, load_protocol, parse_protocol
from SIBSpineSBRTLib.review.pipeline import CaseInput, review_case

TARGET_ROWS = ("GTV", "PTV_Eval")


def masks_of(pc, geometry=None, crop=None):
    g = geometry or pc.ct_geometry
    out = {}
    for n, a in pc.segments.items():
        out[n] = Mask(a if crop is None else a[crop], g, n)
    return out


def dose_of(pc, crop=None, geometry=None):
    arr = pc.dose_gy if crop is None else pc.dose_gy[crop]
    return DoseGrid.from_array(arr, geometry or pc.dose_geometry, "Gy")


def review(pc, protocol, level=None, masks=None, dose=None, **options):
    case = CaseInput(
        "t",
        level or pc.level,
        masks if masks is not None else masks_of(pc),
        dose if dose is not None else dose_of(pc),
        plan_fractions=options.pop("plan_fractions", None),
        plan_dose_gy=options.pop("plan_dose_gy", None),
    )
    return review_case(case, protocol, **options)


def rows_by(result):
    return {(r.structure, r.metric): r for r in result.rows}


def si_crop(geometry: ImageGeometry, shape, keep_from_ras_z: float, side: str):
    """Numpy slices and the cropped geometry keeping the part of a grid superior ("S") or inferior ("I")
    of the RAS z plane."""
    axis, sign = geometry.axis_for_direction("S")
    n = shape[axis]
    idx = np.arange(n)
    ijk = np.zeros((n, 3))
    ijk[:, 2 - axis] = idx
    z = geometry.ijk_to_ras_points(ijk)[:, 2]
    keep = idx[(z > keep_from_ras_z) if side == "S" else (z < keep_from_ras_z)]
    lo, hi = [0, 0, 0], list(shape)
    lo[axis], hi[axis] = int(keep.min()), int(keep.max()) + 1
    crop = tuple(slice(a, b) for a, b in zip(lo, hi))
    return crop, geometry.crop(lo, hi)


@pytest.fixture(scope="module")
def passing(thoracic_case, protocol):
    result = review(thoracic_case, protocol)
    assert result.verdict == ev.PASS and result.exit_code == 0
    return result


def test_baseline_passes_with_met_rows(passing):
    """The unmodified phantom passes; limits with only a mandatory level read MET, not OPTIMAL."""
    rows = rows_by(passing)
    assert rows[("SpinalCord_PRV02", "D0.03cc")].status == ev.MET
    assert rows[("ThecalSac", "D0.03cc")].status == ev.MET
    assert ev.status_counts(passing.protocol_rows)[ev.MET] == 2
    assert passing.deviations == [] and passing.problems == []


# 1. targets outside the dose grid ---------------------------------------------------------------------


def test_dose_grid_cut_through_the_target_is_not_a_pass(thoracic_case, protocol):
    pc = thoracic_case
    gtv_z = Mask(pc.segments["GTV"], pc.ct_geometry).centroid_ras()[2]
    crop, g = si_crop(pc.dose_geometry, pc.dose_gy.shape, gtv_z, "S")
    result = review(pc, protocol, dose=dose_of(pc, crop, g))
    rows = rows_by(result)
    for metric in ("D2%", "D50%", "D90%", "D98%"):
        assert rows[("GTV", metric)].status == ev.NOT_EVALUABLE
        assert "outside the dose grid" in rows[("GTV", metric)].message
    assert result.verdict != ev.PASS and result.exit_code == 2


def test_dose_grid_covering_no_target(thoracic_case, protocol):
    pc = thoracic_case
    # keep only the dose slices 40 mm above the GTV's top
    top = max(pc.ct_geometry.ijk_to_ras_points(np.argwhere(pc.segments["GTV"])[:, ::-1].astype(float))[:, 2])
    crop, g = si_crop(pc.dose_geometry, pc.dose_gy.shape, top + 40, "S")
    result = review(pc, protocol, dose=dose_of(pc, crop, g))
    for r in result.rows:
        if r.structure in TARGET_ROWS:
            assert r.status == ev.NOT_EVALUABLE, (r.structure, r.metric)
    assert result.verdict != ev.PASS


def test_organ_at_risk_partly_outside_in_low_dose_counts_as_zero(thoracic_case, protocol):
    """An OAR leaving the grid where the grid's edge dose is low is judged on its whole volume, the outside
    part at 0 Gy. Truth: the same organ on the uncut grid whose dose is 0 where the cut grid ends."""
    pc = thoracic_case
    ctv = np.argwhere(pc.segments["CTV"])[:, ::-1].astype(float)
    top = max(pc.ct_geometry.ijk_to_ras_points(ctv)[:, 2])
    geometry = pc.dose_geometry
    axis, _ = geometry.axis_for_direction("S")
    ijk = np.zeros((pc.dose_gy.shape[axis], 3))
    ijk[:, 2 - axis] = np.arange(len(ijk))
    z = geometry.ijk_to_ras_points(ijk)[:, 2]
    zeroed = pc.dose_gy.copy()
    index = [slice(None)] * 3
    index[axis] = z > top + 15
    zeroed[tuple(index)] = 0.0  # no dose more than 15 mm above the CTV
    crop, g = si_crop(geometry, zeroed.shape, top + 25, "I")  # and the grid ends 25 mm above it
    cut = review(pc, protocol, dose=DoseGrid.from_array(zeroed[crop], g, "Gy"))
    truth = review(pc, protocol, dose=DoseGrid.from_array(zeroed, geometry, "Gy"))
    assert cut.dvhs["Esophagus"].volume_cc == pytest.approx(truth.dvhs["Esophagus"].volume_cc)
    assert any("of Esophagus lies outside the dose grid" in m and "counted as 0 Gy" in m for m in cut.messages)
    for key in [("Esophagus", "D5cc"), ("Esophagus", "D0.03cc"), ("GreatVessels", "D10cc")]:
        assert rows_by(cut)[key].value == pytest.approx(rows_by(truth)[key].value, abs=0.02), key


def test_organ_at_risk_partly_outside_in_high_dose_is_not_evaluable(thoracic_case, protocol):
    pc = thoracic_case
    gtv_z = Mask(pc.segments["GTV"], pc.ct_geometry).centroid_ras()[2]
    crop, g = si_crop(pc.dose_geometry, pc.dose_gy.shape, gtv_z, "S")
    row = rows_by(review(pc, protocol, dose=dose_of(pc, crop, g)))[("ThecalSac", "D0.03cc")]
    assert row.status == ev.NOT_EVALUABLE and "edge dose" in row.message


# 2. level rules --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "level, status",
    [("L1", ev.NOT_EVALUABLE), ("L2", ev.NOT_EVALUABLE), ("T12-L2", ev.NOT_EVALUABLE), ("L2-L3", ev.NOT_EVALUABLE)]
    + [("L3", ev.NOT_APPLICABLE), ("L4-L5", ev.NOT_APPLICABLE)],
)
def test_cord_prv_without_cord_by_level(thoracic_case, protocol, level, status):
    """Below L2 (L3 down) with no cord the PRV is N/A; at L2 and above, or a range reaching L2, not evaluable."""
    masks = {n: m for n, m in masks_of(thoracic_case).items() if n != "SpinalCord"}
    result = review(thoracic_case, protocol, level=level, masks=masks)
    assert rows_by(result)[("SpinalCord_PRV02", "D0.03cc")].status == status
    assert (result.verdict == ev.PASS) == (status == ev.NOT_APPLICABLE)


def test_cord_present_is_evaluated_at_any_level(thoracic_case, protocol):
    result = review(thoracic_case, protocol, level="L4")
    assert rows_by(result)[("SpinalCord_PRV02", "D0.03cc")].status == ev.MET


def test_level_outside_c1_s5_is_refused(thoracic_case, protocol):
    for level in ("T13", "L6", "X1", "C1-S6"):
        with pytest.raises(ProtocolError, match="not one of C1-C7"):
            review(thoracic_case, protocol, level=level)


def test_lumbosacral_range_subtracts_every_canal(thoracic_case, protocol):
    """A target spanning L5-S1 needs the spinal canal and the sacral canal and foramina."""
    result = review(thoracic_case, protocol, level="L5-S1")
    assert "PTV_Eval" not in result.volumes
    assert "SacralCanal" in result.volume_problems["PTV_Eval"]
    assert result.verdict != ev.PASS


# 3./4. deviations and options ----------------------------------------------------------------------


def test_non_protocol_margins_are_deviations(thoracic_case, protocol):
    from SIBSpineSBRTLib.geometry.margins import Margins

    result = review(thoracic_case, protocol, prv_margin_mm=0)
    assert result.deviations == ["SpinalCord_PRV02 margin 0 mm instead of the protocol's 2 mm."]
    assert result.verdict == ev.PASS and result.exit_code == 2  # every limit met, but not a protocol pass
    both = review(thoracic_case, protocol, prv_margin_mm=0, ptv_margins=Margins.isotropic(0))
    assert len(both.deviations) == 2 and "PTV margins 0 mm" in both.deviations[0]
    same = review(thoracic_case, protocol, prv_margin_mm=2, ptv_margins=Margins(2, 2, 2, 2, 5, 5))
    assert same.deviations == [] and same.exit_code == 0  # the protocol's own values are no deviation


def test_role_for_a_derived_structure_is_refused(thoracic_case, protocol):
    with pytest.raises(ProtocolError, match="PTV_Eval"):
        review(thoracic_case, protocol, role_overrides={"PTV_Eval": "GTV"})


def test_protocol_edited_without_saying_so_is_a_deviation(thoracic_case, tmp_path):
    data = json.loads((PROTOCOL_DIR / "mitsuyoshi2025.json").read_text())
    data["constraints"][7]["mandatory"]["max"] = 40  # cord PRV limit loosened, id kept
    edited = parse_protocol(data, "edited.json")
    assert edited.modified
    result = review(thoracic_case, edited)
    assert any("differs from the shipped" in d for d in result.deviations)
    assert result.exit_code == 2
    assert not load_protocol().modified  # the shipped file matches its recorded checksum


# 5./6. MET and advisory rows -------------------------------------------------------------------------


def _with_esophagus_limit(confirmed: bool, new_id: str):
    data = json.loads((PROTOCOL_DIR / "mitsuyoshi2025.json").read_text())
    data["id"] = new_id
    for c in data["constraints"]:
        if (c["structure"], c["metric"]) == ("Esophagus", "D0.03cc"):
            c["mandatory"]["max"] = 5.0
            c["confirmed"] = confirmed
    return parse_protocol(copy.deepcopy(data), new_id)


def test_failing_advisory_row_never_decides_the_verdict(thoracic_case):
    result = review(thoracic_case, _with_esophagus_limit(False, "clinic-advisory"))
    row = rows_by(result)[("Esophagus", "D0.03cc")]
    assert row.status == ev.FAIL and row.advisory
    assert result.verdict == ev.PASS and result.advisory_verdict == ev.FAIL
    assert any(m.startswith("Advisory: Esophagus D0.03cc") for m in result.messages)


def test_confirmed_local_limit_decides_the_verdict(thoracic_case):
    result = review(thoracic_case, _with_esophagus_limit(True, "clinic-confirmed"))
    assert result.verdict == ev.FAIL and result.exit_code == 1


def test_expected_organs_absent_are_reported(passing):
    assert {"Heart", "Lungs"} <= set(passing.not_contoured)
    assert "Esophagus" not in passing.not_contoured
    assert passing.advisory_verdict == ev.INCOMPLETE and passing.verdict == ev.PASS


def test_segments_matching_no_role_are_listed(thoracic_case, protocol):
    masks = masks_of(thoracic_case)
    masks["Kidney_Cyst"] = masks["GTV"].renamed("Kidney_Cyst")
    assert review(thoracic_case, protocol, masks=masks).not_evaluated == ["Kidney_Cyst"]


def test_kidneys_are_the_union_of_left_and_right(thoracic_case, protocol):
    masks = masks_of(thoracic_case)
    masks["Kidney_L"] = masks["Esophagus"].renamed("Kidney_L")
    masks["Kidney_R"] = masks["GreatVessels"].renamed("Kidney_R")
    result = review(thoracic_case, protocol, masks=masks)
    assert result.dvhs["Kidneys"].volume_cc == pytest.approx(masks["Esophagus"].union(masks["GreatVessels"]).volume_cc)


# 7. judged as shown ------------------------------------------------------------------------------------


def test_value_is_judged_and_shown_at_the_protocol_precision(passing):
    for r in passing.rows:
        if r.value is None:
            continue
        assert r.value_text.startswith(f"{r.judged_value:.{r.constraint.decimals}f}")
        assert ev.judge(r.constraint, r.judged_value) == r.status


# 9. images covering part of a structure ----------------------------------------------------------------


@pytest.mark.parametrize("side", ["S", "I"])
def test_image_cut_through_the_target_is_not_a_pass(thoracic_case, protocol, side):
    """A CT or segmentation that ends halfway through the target: the target reaches the grid's end slice."""
    pc = thoracic_case
    gtv_z = Mask(pc.segments["GTV"], pc.ct_geometry).centroid_ras()[2]
    crop, g = si_crop(pc.ct_geometry, pc.segments["GTV"].shape, gtv_z, side)
    result = review(pc, protocol, masks=masks_of(pc, g, crop))
    rows = rows_by(result)
    assert "PTV" not in result.volumes and "cut" in result.volume_problems["PTV"]
    for metric in ("D2%", "D50%", "D90%", "D98%"):
        assert rows[("GTV", metric)].status == ev.NOT_EVALUABLE
        assert "cut by the CT or segmentation extent" in rows[("GTV", metric)].message
    assert result.verdict != ev.PASS


def test_ct_ending_within_the_ptv_margin_is_not_a_pass(thoracic_case, protocol):
    pc = thoracic_case
    ctv = np.argwhere(pc.segments["CTV"])[:, ::-1].astype(float)
    top = max(pc.ct_geometry.ijk_to_ras_points(ctv)[:, 2])
    crop, g = si_crop(pc.ct_geometry, pc.segments["CTV"].shape, top + 3.0, "I")  # 3 mm above: inside 5 mm
    result = review(pc, protocol, masks=masks_of(pc, g, crop))
    assert "PTV" not in result.volumes and "within the margin" in result.volume_problems["PTV"]
    assert result.verdict != ev.PASS


# 10. the plan must be the protocol's plan -------------------------------------------------------------


def test_three_fraction_plan_is_not_a_pass(thoracic_case, protocol):
    result = review(thoracic_case, protocol, plan_fractions=3, plan_dose_gy=30.0)
    assert result.verdict == ev.INCOMPLETE and result.exit_code == 2
    assert any("3 fractions" in p for p in result.problems)
    same = review(thoracic_case, protocol, plan_fractions=5, plan_dose_gy=30.0)
    assert same.verdict == ev.PASS and same.problems == []


def test_other_prescription_is_not_a_pass(thoracic_case, protocol):
    result = review(thoracic_case, protocol, plan_fractions=5, plan_dose_gy=35.0)
    assert result.verdict != ev.PASS and any("35 Gy" in p for p in result.problems)


# 11. nothing to check, unit errors, contouring errors ------------------------------------------------


def test_protocol_without_constraints_is_refused():
    data = json.loads((PROTOCOL_DIR / "mitsuyoshi2025.json").read_text())
    data["constraints"] = []
    data.pop("expected_organs", None)
    with pytest.raises(ProtocolError, match="no constraints"):
        parse_protocol(data, "empty.json")


def test_protocol_with_nothing_that_applies_is_refused(thoracic_case):
    data = json.loads((PROTOCOL_DIR / "mitsuyoshi2025.json").read_text())
    data["id"] = "only-bladder"
    data["constraints"] = [c for c in data["constraints"] if c["structure"] == "Bladder"]
    with pytest.raises(ProtocolError, match="no constraint that applies"):
        review(thoracic_case, parse_protocol(data, "only-bladder.json"))


@pytest.mark.parametrize("factor", [100.0, 0.01, 0.2])
def test_dose_in_the_wrong_unit_is_refused(thoracic_case, protocol, factor):
    pc = thoracic_case
    with pytest.raises(DoseError, match="unit error"):
        review(pc, protocol, dose=DoseGrid.from_array(pc.dose_gy * factor, pc.dose_geometry, "Gy"))


def test_target_empty_after_subtraction(thoracic_case, protocol):
    masks = masks_of(thoracic_case)
    from SIBSpineSBRTLib.geometry.margins import Margins, expand

    masks["SpinalCanal"] = expand(masks["CTV"], Margins.axial_si(4, 8), "SpinalCanal")  # canal swallows the PTV
    result = review(thoracic_case, protocol, masks=masks)
    for r in result.rows:
        if r.structure == "PTV_Eval":
            assert r.status == ev.NOT_EVALUABLE and "empty" in r.message
    assert result.verdict != ev.PASS


def test_gtv_larger_than_the_ctv(thoracic_case, protocol):
    masks = masks_of(thoracic_case)
    masks["GTV"], masks["CTV"] = masks["CTV"].renamed("GTV"), masks["GTV"].renamed("CTV")
    result = review(thoracic_case, protocol, masks=masks)
    assert result.verdict != ev.PASS
    assert any("outside the CTV" in p for p in result.problems)


def test_what_if_keeps_the_review_facts(thoracic_case, protocol):
    """A rescaled review keeps N/A rows N/A and its problems: a what-if never turns incomplete into pass."""
    from SIBSpineSBRTLib.review.whatif import rescaled_review

    masks = {n: m for n, m in masks_of(thoracic_case).items() if n != "SpinalCord"}
    below = review(thoracic_case, protocol, level="L4", masks=masks, plan_fractions=3)
    again = rescaled_review(below, 1.0)
    assert [r.status for r in again.rows] == [r.status for r in below.rows]
    assert again.verdict == below.verdict == ev.INCOMPLETE


def test_the_slicer_panel_passes_the_plan_prescription_too(thoracic_case, protocol):
    """The panel's evaluate and review --dicom share with_plan_prescription: a 3-fraction RTPLAN stops a pass."""
    from types import SimpleNamespace

    from SIBSpineSBRTLib.review.dicom_review import with_plan_prescription

    case = SimpleNamespace(prescription=SimpleNamespace(fractions=3, total_dose_gy=30.0))
    data = with_plan_prescription(CaseInput("t", "T8", masks_of(thoracic_case), dose_of(thoracic_case)), case)
    assert (data.plan_fractions, data.plan_dose_gy) == (3, 30.0)
    assert review_case(data, protocol).verdict == ev.INCOMPLETE
    unchanged = with_plan_prescription(CaseInput("t", "T8", {}, None), SimpleNamespace(prescription=None))
    assert unchanged.plan_fractions is None


def test_a_dose_that_is_zero_everywhere_is_refused(thoracic_case):
    with pytest.raises(DoseError, match="zero everywhere"):
        DoseGrid.from_array(np.zeros(thoracic_case.dose_gy.shape), thoracic_case.dose_geometry, "Gy")


def test_report_images_of_a_review_without_targets(thoracic_case, protocol):
    """No GTV or CTV: the rows are not evaluable and the report still draws its slices (CT centre)."""
    from SIBSpineSBRTLib.report.html_report import ImageInput, make_images

    masks = {n: m for n, m in masks_of(thoracic_case).items() if n not in ("GTV", "CTV")}
    result = review(thoracic_case, protocol, masks=masks)
    assert result.verdict == ev.INCOMPLETE
    images = make_images(result, ImageInput(thoracic_case.ct, thoracic_case.ct_geometry))
    assert images["axial_dose"][:4] == b"\x89PNG" and images["sagittal_dose"][:4] == b"\x89PNG"


def test_dose_metrics_are_never_negative_in_a_zero_dose_region(thoracic_case, protocol):
    """Where the dose is 0 Gy the 1e-9 Gy spread floor must not give Dmin or D98% = -1e-9 Gy."""
    from SIBSpineSBRTLib.dose.dvh import compute_dvh

    pc = thoracic_case
    zeroed = pc.dose_gy.copy()
    zeroed[: zeroed.shape[0] // 4] = 0.0
    far = np.zeros(pc.dose_gy.shape, bool)
    far[:2, :10, :10] = True  # a small organ in the zeroed corner of the dose grid
    geometry = pc.dose_geometry
    dvh = compute_dvh(Mask(far, geometry, "far"), DoseGrid.from_array(zeroed, geometry, "Gy"))
    assert dvh.min == 0.0 and 0.0 <= dvh.metric("D98%") < 1e-8 and dvh.metric("Dmean") == 0.0
