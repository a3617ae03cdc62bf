"""What real planning-system exports need, on synthetic data (the real case is test_real_breast_case.py):
the images a structure set references checked, the prescription read from target regions only (never a
calculation point; an ambiguous one is not compared), the DVH bounded by what the dose can reach, and the
small things real data hit (coordinates in LPS, no "0.00%", the missing RTPLAN named)."""

from types import SimpleNamespace

import dicom_fixtures as fx
import numpy as np
import pytest

# -- the prescription --------------------------------------------------------------------------------------


def write_plan(path, refs, referenced=None, fractions=5):
    """An RTPLAN with TARGET dose references (dose, structure type, description); ``referenced``: the numbers
    the fraction group references."""
    import pydicom
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    fx.write_rtplan(path, fx.uid(), fx.uid(), targets=(), fractions=fractions)
    ds = pydicom.dcmread(str(path))
    items = []
    for n, (dose, kind, description) in enumerate(refs, start=1):
        d = Dataset()
        d.DoseReferenceNumber = n
        if kind:
            d.DoseReferenceStructureType = kind
        d.DoseReferenceDescription = description
        d.DoseReferenceType = "TARGET"
        d.TargetPrescriptionDose = dose
        items.append(d)
    ds.DoseReferenceSequence = Sequence(items)
    if referenced:
        refs_seq = []
        for n in referenced:
            r = Dataset()
            r.ReferencedDoseReferenceNumber = n
            refs_seq.append(r)
        ds.FractionGroupSequence[0].ReferencedDoseReferenceSequence = Sequence(refs_seq)
    ds.save_as(str(path))
    return path


def read(path):
    from SIBSpineSBRTLib.caseio.rtplan import read_rtplan

    return read_rtplan(path)


def test_a_calculation_point_is_never_the_prescription(tmp_path):
    p = read(write_plan(tmp_path / "p", [(30.0, "SITE", "Spine"), (22.6, "COORDINATES", "CALC POINT")]))
    assert p.total_dose_gy == 30.0 and not p.ambiguous and [t.dose_gy for t in p.points] == [22.6]
    assert "'CALC POINT'" in " ".join(p.notes)
    only_point = read(write_plan(tmp_path / "q", [(22.6, "POINT", "norm")]))
    assert only_point.total_dose_gy is None and not only_point.ambiguous
    assert "only target doses are at points" in " ".join(only_point.notes)


def test_sib_targets_keep_the_lowest_as_the_prescription(tmp_path):
    p = read(write_plan(tmp_path / "p", [(40.0, "VOLUME", "GTV"), (30.0, "VOLUME", "PTV"), (25.0, "POINT", "pt")]))
    assert p.total_dose_gy == 30.0 and p.describe() == "30 Gy in 5 fractions (boost to 40 Gy)"


def test_the_fraction_groups_references_choose(tmp_path):
    p = read(write_plan(tmp_path / "p", [(24.0, "SITE", "old"), (30.0, "SITE", "Spine")], referenced=[2]))
    assert p.total_dose_gy == 30.0 and "not referenced by the fraction group" in " ".join(p.notes)
    q = read(write_plan(tmp_path / "q", [(30.0, "SITE", "Spine"), (20.0, "COORDINATES", "pt")], referenced=[2]))
    assert q.total_dose_gy is None and q.ambiguous and "ambiguous" in " ".join(q.notes)


def test_untyped_target_doses_are_ambiguous_and_never_fail_a_plan(tmp_path, protocol):
    from SIBSpineSBRTLib.review.dicom_review import with_plan_prescription
    from SIBSpineSBRTLib.review.pipeline import CaseInput, _plan_problems

    p = read(write_plan(tmp_path / "p", [(30.0, "", "a"), (11.3, "", "b")]))
    assert p.total_dose_gy is None and p.ambiguous and p.fractions == 5
    assert "ambiguous" in " ".join(p.notes) and "protocol's prescription" in " ".join(p.notes)
    assert p.describe() == "prescription ambiguous (11.3, 30 Gy) in 5 fractions"
    data = with_plan_prescription(CaseInput("c", "T8", {}, None), SimpleNamespace(prescription=p, plan_problem=""))
    assert data.plan_dose_gy is None and _plan_problems(protocol, data) == []
    typed = read(write_plan(tmp_path / "q", [(30.0, "VOLUME", "PTV"), (11.3, "", "b")]))
    assert typed.total_dose_gy == 30.0 and "left out of the prescription" in " ".join(typed.notes)


# -- the images a structure set references -----------------------------------------------------------------


def test_a_contour_on_an_image_not_in_the_folder_is_named(tmp_path):
    import pydicom

    from SIBSpineSBRTLib.caseio.case_loader import choose_ct_and_structures
    from SIBSpineSBRTLib.caseio.dicom_scan import scan_folder
    from SIBSpineSBRTLib.caseio.errors import MissingSeriesError

    case = fx.make_case(tmp_path / "case", with_mr=False, with_dose=False, with_plan=False)
    choose_ct_and_structures(scan_folder(case.folder), None, None, [])  # as exported: every image is there
    ds = pydicom.dcmread(str(case.rtstruct_path))
    referenced = {
        str(ci.ReferencedSOPInstanceUID)
        for roi in ds.ROIContourSequence
        for c in roi.ContourSequence
        for ci in getattr(c, "ContourImageSequence", [])
    }
    ds.ROIContourSequence[0].ContourSequence[0].ContourImageSequence[0].ReferencedSOPInstanceUID = fx.uid()
    ds.save_as(str(case.rtstruct_path))  # a contour drawn on an image that was not exported
    with pytest.raises(MissingSeriesError) as exc:
        choose_ct_and_structures(scan_folder(case.folder), None, None, [])
    text = str(exc.value)
    total = len(referenced) + 1
    assert str(case.rtstruct_path) in text
    assert f"1 of the {total} CT images its contours reference are missing from the case folder" in text
    assert "the planning CT's own series, which is incomplete" in text and case.ct.series_uid in text


def test_contours_on_another_series_than_the_one_chosen_are_refused(tmp_path):
    import shutil

    import pydicom

    from SIBSpineSBRTLib.caseio.case_loader import choose_ct_and_structures
    from SIBSpineSBRTLib.caseio.dicom_scan import scan_folder
    from SIBSpineSBRTLib.caseio.errors import MissingSeriesError

    case = fx.make_case(tmp_path / "case", with_mr=False, with_dose=False, with_plan=False)
    copy_uid = fx.uid()
    (case.folder / "copy").mkdir()
    for n, f in enumerate(case.ct.files):
        ds = pydicom.dcmread(str(f))
        ds.SeriesInstanceUID, ds.SOPInstanceUID, ds.SeriesNumber = copy_uid, fx.uid(), 77
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(str(case.folder / "copy" / f"c{n}.dcm"))
    with pytest.raises(MissingSeriesError) as exc:
        choose_ct_and_structures(scan_folder(case.folder), copy_uid, None, [])
    text = str(exc.value)
    assert "are images of CT series 2 'Planning CT'" in text and "not of the planning CT" in text
    shutil.rmtree(case.folder / "copy")


def test_no_rtplan_is_said_when_the_level_is_missing():
    from SIBSpineSBRTLib.protocol.model import ProtocolError
    from SIBSpineSBRTLib.review.dicom_review import case_level

    for prescription, said in (
        (None, "the case has no RTPLAN"),
        (SimpleNamespace(plan_label=""), "the RTPLAN has no label"),
        (SimpleNamespace(plan_label="B1"), "the RTPLAN label ('B1') does not state it"),
    ):
        with pytest.raises(ProtocolError, match="pass --level") as exc:
            case_level(SimpleNamespace(prescription=prescription, messages=[]), None)
        assert said in str(exc.value)


# -- small things -----------------------------------------------------------------------------------------


def test_grid_descriptions_give_dicom_patient_coordinates():
    from SIBSpineSBRTLib.geometry.grid import ImageGeometry

    g = ImageGeometry((1, 512, 512), (275.0, 524.0, 168.5593), (1.074219, 1.074219, 3.0))
    text = g.describe()
    assert "(-275.00, -524.00, 168.56) mm LPS" in text and "512x512x1 voxels" in text


def test_a_small_fraction_outside_is_never_zero_percent():
    from SIBSpineSBRTLib.dose.dvh import percent_text

    assert percent_text(1e-7) == "< 0.01%" and percent_text(0.5) == "50.00%" and percent_text(0.0001) == "0.01%"


# -- the DVH within what the dose can reach ----------------------------------------------------------------


def test_box_ranges_are_clamped_to_the_bounds():
    from SIBSpineSBRTLib.dose.dvh import DVH

    doses = np.array([10.0, 9.0, 8.0])
    spreads = np.array([[0.4, 0.3, 0.2], [0.2, 0.2, 0.2], [0.5, 0.1, 0.1]])
    free = DVH("s", doses, np.array([1.0, 2.0, 3.0]), 3.0, 0.0, spreads=spreads)
    bounded = DVH("s", doses, np.array([1.0, 2.0, 3.0]), 3.0, 0.0, spreads=spreads, bounds=(7.5, 10.5))
    assert free.max == pytest.approx(10.9) and bounded.max == 10.5
    assert free.min == pytest.approx(7.3) and bounded.min == 7.5
    assert bounded.mean == free.mean  # the exact mean is never changed
    assert bounded.volume_at_dose_cc(10.6) == 0.0 and bounded.volume_at_dose_cc(7.5) == 3.0
    for m in ("D50%", "D2%", "D1cc"):  # inside the bounds the DVH is unchanged
        assert bounded.metric(m) == pytest.approx(free.metric(m))
    assert bounded.metric("D0.001cc") <= 10.5 and bounded.metric("D99.99%") >= 7.5
    assert bounded.scaled(2.0).max == 21.0 and bounded.with_outside_at_zero().bounds == (7.5, 10.5)
    levels, percent = bounded.curve(0.1)
    assert percent[levels > 10.5].max(initial=0.0) == 0.0


def hot_spot_dose(seed=0):
    """A dose grid whose largest value is one node: a box's linear model overshoots it."""
    from SIBSpineSBRTLib.dose.grid import DoseGrid
    from SIBSpineSBRTLib.geometry.grid import ImageGeometry

    rng = np.random.default_rng(seed)
    values = rng.uniform(10.0, 12.0, (8, 9, 10))
    values[4, 4, 5] = 20.0
    return DoseGrid(values, ImageGeometry((8, 9, 10), (0.0, 0.0, 0.0), (2.5, 2.5, 3.0)))


@pytest.mark.parametrize("supersampling", [None, (2, 2, 2), (3, 1, 2)])
def test_a_labelmap_dvh_never_reaches_past_the_dose(supersampling):
    from SIBSpineSBRTLib.dose.dvh import compute_dvh
    from SIBSpineSBRTLib.geometry.grid import ImageGeometry
    from SIBSpineSBRTLib.geometry.masks import Mask

    dose = hot_spot_dose()
    geometry = ImageGeometry((14, 20, 22), (1.3, 0.7, 2.0), (1.1, 1.0, 1.5))
    array = np.zeros(geometry.shape, bool)
    array[3:11, 5:16, 4:18] = True
    mask = Mask(array, geometry, "box")
    dvh = compute_dvh(mask, dose, supersampling)
    # the exact extremes: cut on the dose grid's node planes, each voxel is boxes in which the dose is
    # multilinear, so the extremes lie at their corners: per axis the voxel's two faces and the node between
    k, j, i = np.nonzero(array)
    centres = dose.geometry.ras_to_ijk_points(geometry.ijk_to_ras_points(np.stack([i, j, k], 1).astype(float)))
    half = 0.5 * np.asarray(geometry.spacing) / np.asarray(dose.geometry.spacing)  # parallel grids
    lo, hi = centres - half, centres + half
    node = np.where(np.ceil(lo) <= hi, np.ceil(lo), lo)
    axes = np.stack([lo, node, hi], 1)  # (n, 3 breakpoints, 3 axes)
    corners = np.stack(np.meshgrid(range(3), range(3), range(3), indexing="ij"), -1).reshape(-1, 3)
    ijk = np.stack([axes[:, corners[:, a], a] for a in range(3)], -1).reshape(-1, 3)
    values = dose.interpolate_index(ijk)[0]
    assert dvh.max <= dose.array.max() + 1e-12 and dvh.min >= dose.array.min() - 1e-12
    if supersampling is None:  # the adaptive boxes: within 0.02 Gy of the exact extremes, never beyond them
        assert values.max() - 0.02 <= dvh.max <= values.max() + 1e-9
        assert values.min() - 1e-9 <= dvh.min <= values.min() + 0.02


def test_contour_dose_extremes_are_exact_and_bound_the_dvh():
    from SIBSpineSBRTLib.dose.contours import ContourStructure
    from SIBSpineSBRTLib.dose.dvh import compute_dvh

    dose = hot_spot_dose(1)
    # a tilted polygon near the hot node (RAS x = 12.5, y = 10, z = 12), on planes between the dose frames
    angles = np.linspace(0, 2 * np.pi, 9)[:-1] + 0.2
    rings = [
        np.stack([11.0 + 4.2 * np.cos(angles), 10.4 + 2.9 * np.sin(angles), np.full(8, z)], 1)
        for z in (7.7, 9.7, 11.7, 13.7)
    ]
    structure = ContourStructure.from_polygons("s", rings)
    low, high = structure.dose_extremes(dose)
    # brute force on the solid: dense points in each slab (even-odd, one convex ring per plane)
    from matplotlib.path import Path as MplPath

    best_hi, best_lo = -np.inf, np.inf
    for plane in structure.planes:
        ring = plane.rings[0]
        u = np.linspace(ring[:, 0].min(), ring[:, 0].max(), 301)
        v = np.linspace(ring[:, 1].min(), ring[:, 1].max(), 301)
        uu, vv = np.meshgrid(u, v)
        pts = np.stack([uu.ravel(), vv.ravel()], 1)
        pts = pts[MplPath(ring).contains_points(pts)]
        for w in np.linspace(plane.position_mm - plane.below_mm, plane.position_mm + plane.above_mm, 21):
            ras = np.column_stack([pts[:, 0], pts[:, 1], np.full(len(pts), w)])
            values, _ = dose.sample(ras)
            best_hi, best_lo = max(best_hi, values.max()), min(best_lo, values.min())
    assert best_hi - 1e-9 <= high <= best_hi + 0.05 and best_lo - 0.05 <= low <= best_lo + 1e-9
    dvh = compute_dvh(structure, dose)
    assert low - 1e-12 <= dvh.min and dvh.max <= high + 1e-12
