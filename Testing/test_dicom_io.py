"""DICOM-RT in and out (issue 5): case folders into MRML, RTSTRUCT export, named errors for bad input.

All data is synthetic and written by ``dicom_fixtures`` with pydicom. Tests that need slicer-core are
marked ``mrml``; the others need pydicom and contourpy (skipped where they are not installed).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dicom_fixtures as fx  # pydicom, contourpy and SimpleITK are in both locked venvs
import numpy as np
import pytest

from SIBSpineSBRTLib.caseio import errors
from SIBSpineSBRTLib.geometry.masks import Mask

REPO = Path(__file__).resolve().parents[1]


def dice(a, b) -> float:
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    return 2.0 * np.count_nonzero(a & b) / max(1, np.count_nonzero(a) + np.count_nonzero(b))


@pytest.fixture(scope="module")
def case_dir(tmp_path_factory):
    return fx.make_case(tmp_path_factory.mktemp("case"))


def copy_case(case, tmp_path) -> Path:
    dst = tmp_path / "case"
    shutil.copytree(case.folder, dst)
    return dst


def small_series(folder, orientation="HFS", slices=6, **kw):
    grid = fx.Grid(
        rows=12,
        cols=10,
        slices=slices,
        pixel_spacing=(0.7, 1.1),
        slice_step=2.5,
        center=(3.3, -4.4, 7.7),
        iop=fx.ORIENTATIONS[orientation],
    )
    values = np.arange(grid.slices * grid.rows * grid.cols, dtype=float).reshape(grid.slices, grid.rows, grid.cols)
    return fx.write_image_series(folder, grid, values - 500, **kw)


# -- scanning -----------------------------------------------------------------------------------------


def test_scan_sorts_nested_folders_with_any_file_names(case_dir):
    from SIBSpineSBRTLib.caseio.dicom_scan import scan_folder

    scan = scan_folder(case_dir.folder)
    assert [(s.modality, len(s.files)) for s in scan.image_series()] == [("CT", 26), ("MR", 10), ("MR", 8)]
    assert len(scan.rtstructs) == len(scan.rtdoses) == len(scan.rtplans) == 1
    assert [p.name for p in scan.ignored] == ["README.txt"]
    assert scan.corrupt == []


def test_bare_datasets_without_preamble_are_read_and_other_files_ignored(tmp_path):
    from SIBSpineSBRTLib.caseio.dicom_image import read_image_series
    from SIBSpineSBRTLib.caseio.dicom_scan import scan_folder

    info = small_series(tmp_path / "ct", slices=3)
    for f in info.files:
        fx.rewrite_without_preamble(f)
    assert info.files[0].read_bytes()[128:132] != b"DICM"
    (tmp_path / "notes").write_text("not DICOM at all " * 20)
    (tmp_path / "blob").write_bytes(bytes(range(256)) * 8)
    scan = scan_folder(tmp_path)
    assert sorted(p.name for p in scan.ignored) == ["blob", "notes"] and scan.corrupt == []
    ser = read_image_series(scan.image_series("CT")[0])
    assert np.array_equal(ser.array[ser.slice_sop_uids.index(info.sop_uids[1])], info.values[1])


def test_corrupt_files_are_named_and_the_rest_still_loads(case_dir, tmp_path):
    from SIBSpineSBRTLib.caseio.dicom_scan import scan_folder

    folder = copy_case(case_dir, tmp_path)
    plan = folder / "export" / "rt" / "plan.dcm"
    data = plan.read_bytes()
    (folder / "truncated_copy.dcm").write_bytes(data[: len(data) // 2])
    (folder / "garbage.dcm").write_bytes(b"\0" * 128 + b"DICM" + os.urandom(300))
    mr = sorted((folder / "mr_other").iterdir())[0]
    mr.write_bytes(mr.read_bytes()[:-100])  # an MR slice cut inside its pixel data
    scan = scan_folder(folder)
    named = {c.path.name for c in scan.corrupt}
    assert named == {"truncated_copy.dcm", "garbage.dcm", mr.name}
    assert all(str(c.path) in c.reason for c in scan.corrupt)
    assert len(scan.rtplans) == 1 and len(scan.image_series("CT")[0].files) == 26


@pytest.mark.mrml
def test_case_with_corrupt_files_loads_and_reports_them(case_dir, tmp_path, scene):
    from SIBSpineSBRTLib.caseio.case_loader import load_dicom_case

    folder = copy_case(case_dir, tmp_path)
    (folder / "garbage.dcm").write_bytes(b"\0" * 128 + b"DICM" + os.urandom(300))
    mr = sorted((folder / "mr_other").iterdir())[0]
    mr.write_bytes(mr.read_bytes()[:-100])
    case = load_dicom_case(folder, scene)
    text = "\n".join(case.messages)
    assert "garbage.dcm" in text and mr.name in text
    assert case.segmentation is not None and case.dose is not None and case.prescription is not None
    # the MR that lost a slice is not loaded, and the message says why (a gap blamed on the corrupt file)
    assert [n.GetName() for n in case.mr] == ["MR 5 T2 SAG"]
    assert "T1 other frame" in text and "missing" in text


def test_corrupt_planning_ct_slice_is_an_error_naming_the_file(case_dir, tmp_path):
    from SIBSpineSBRTLib.caseio.dicom_image import read_image_series
    from SIBSpineSBRTLib.caseio.dicom_scan import scan_folder

    folder = copy_case(case_dir, tmp_path)
    bad = folder / case_dir.ct.files[10].relative_to(case_dir.folder)
    bad.write_bytes(bad.read_bytes()[:-50])
    scan = scan_folder(folder)
    with pytest.raises(errors.MissingSliceError) as exc:
        read_image_series(scan.image_series("CT")[0], scan)
    assert bad.name in str(exc.value) and "1 slice(s) missing" in str(exc.value)


# -- image series -------------------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", ["HFS", "FFS", "HFP", "FFP"])
def test_series_geometry_and_values_follow_dicom_positions(tmp_path, orientation):
    from SIBSpineSBRTLib.caseio.dicom_image import read_image_series
    from SIBSpineSBRTLib.caseio.dicom_scan import scan_folder

    info = small_series(tmp_path / "ct", orientation)
    ser = read_image_series(scan_folder(tmp_path).image_series("CT")[0])
    assert ser.array.dtype == np.int16
    g = ser.geometry
    for k_file in (0, 3, 5):
        k = ser.slice_sop_uids.index(info.sop_uids[k_file])
        lps = info.grid.lps(k_file)
        for j, i in ((0, 0), (11, 9), (5, 2)):
            ras = g.ijk_to_ras_points(np.array([[i, j, k]], float))[0]
            assert np.allclose(ras, lps[j, i] * [-1, -1, 1], atol=1e-5)
            assert ser.array[k, j, i] == info.values[k_file, j, i]
    assert np.allclose(g.spacing, (1.1, 0.7, 2.5))


@pytest.mark.mrml
def test_ct_node_geometry_in_mrml(tmp_path, scene):
    from SIBSpineSBRTLib.caseio.dicom_image import read_image_series
    from SIBSpineSBRTLib.caseio.dicom_scan import scan_folder
    from SIBSpineSBRTLib.mrml.volumes import add_volume, volume_array, volume_geometry

    small_series(tmp_path / "ct", "FFP")
    ser = read_image_series(scan_folder(tmp_path).image_series("CT")[0])
    node = add_volume(scene.scene, ser.array, ser.geometry, "CT")
    assert volume_geometry(node).same_grid(ser.geometry, 1e-6)
    assert np.array_equal(volume_array(node), ser.array)


def test_compressed_slices_pydicom_cannot_decode_are_read_with_simpleitk(tmp_path):
    import pydicom

    from SIBSpineSBRTLib.caseio.dicom_image import read_image_series
    from SIBSpineSBRTLib.caseio.dicom_scan import scan_folder

    info = small_series(tmp_path / "ct", "FFS", slices=3)
    for f in info.files:
        fx.recompress_with_simpleitk(f)
    ds = pydicom.dcmread(info.files[0])
    assert ds.file_meta.TransferSyntaxUID.is_compressed
    # precondition (the locked venvs have no pydicom JPEG decoder): if this fails, the fallback is untested
    with pytest.raises(Exception):  # noqa: B017 - any decoder error pydicom raises
        _ = ds.pixel_array
    ser = read_image_series(scan_folder(tmp_path).image_series("CT")[0])
    for k_file in range(3):
        k = ser.slice_sop_uids.index(info.sop_uids[k_file])
        assert np.array_equal(ser.array[k], info.values[k_file])


def test_bits_above_bits_stored_are_ignored_with_any_pydicom(tmp_path):
    """12-bit signed CT values in 16-bit words, high bits clear or holding other bits: the same HU with pydicom 2.x
    (whose pixel_array keeps those bits) as with 3.x (which masks / sign-extends them)."""
    import pydicom

    from SIBSpineSBRTLib.caseio.dicom_image import read_image_series
    from SIBSpineSBRTLib.caseio.dicom_scan import scan_folder

    info = small_series(tmp_path / "ct", slices=3)  # values -500 .. 219
    for k, f in enumerate(info.files):
        ds = pydicom.dcmread(f)
        words = info.values[k].astype(np.int16).view(np.uint16) & 0x0FFF  # 12-bit two's complement
        if k == 1:
            words |= 0xA000  # unused high bits set (e.g. overlay bits)
        ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, 1
        ds.RescaleIntercept = 0
        ds.PixelData = words.astype("<u2").tobytes()
        fx.save(ds, f)
    ser = read_image_series(scan_folder(tmp_path).image_series("CT")[0])
    for k_file in range(3):
        assert np.array_equal(ser.array[ser.slice_sop_uids.index(info.sop_uids[k_file])], info.values[k_file])


def test_missing_slice_names_the_neighbours(tmp_path):
    from SIBSpineSBRTLib.caseio.dicom_image import read_image_series
    from SIBSpineSBRTLib.caseio.dicom_scan import scan_folder

    info = small_series(tmp_path / "ct")
    info.files[3].unlink()
    with pytest.raises(errors.MissingSliceError) as exc:
        read_image_series(scan_folder(tmp_path).image_series("CT")[0])
    msg = str(exc.value)
    assert str(info.files[2]) in msg and str(info.files[4]) in msg and "1 slice(s) missing" in msg


def test_duplicate_slices_are_refused(tmp_path):
    import pydicom
    from pydicom.uid import generate_uid

    from SIBSpineSBRTLib.caseio.dicom_image import read_image_series
    from SIBSpineSBRTLib.caseio.dicom_scan import scan_folder

    info = small_series(tmp_path / "ct")
    shutil.copy(info.files[2], tmp_path / "ct" / "copy_of_slice")
    with pytest.raises(errors.DuplicateSliceError, match="the same SOP instance twice") as exc:
        read_image_series(scan_folder(tmp_path).image_series("CT")[0])
    assert "copy_of_slice" in str(exc.value)
    (tmp_path / "ct" / "copy_of_slice").unlink()
    ds = pydicom.dcmread(info.files[4])
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    fx.save(ds, tmp_path / "ct" / "second_at_same_place")
    with pytest.raises(errors.DuplicateSliceError, match="second_at_same_place"):
        read_image_series(scan_folder(tmp_path).image_series("CT")[0])


def test_mixed_series_under_one_uid_are_refused(tmp_path):
    import pydicom

    from SIBSpineSBRTLib.caseio.dicom_image import read_image_series
    from SIBSpineSBRTLib.caseio.dicom_scan import scan_folder

    a = small_series(tmp_path / "a")
    b = small_series(tmp_path / "b", "HFP")
    ds = pydicom.dcmread(b.files[0])
    ds.SeriesInstanceUID = a.series_uid
    fx.save(ds, b.files[0])
    scan = scan_folder(tmp_path)
    with pytest.raises(errors.MixedSeriesError, match="share a series UID but differ") as exc:
        read_image_series(scan.series[a.series_uid])
    assert str(b.files[0]) in str(exc.value)


def test_irregular_spacing_and_gantry_tilt_are_refused(tmp_path):
    import pydicom

    from SIBSpineSBRTLib.caseio.dicom_image import read_image_series
    from SIBSpineSBRTLib.caseio.dicom_scan import scan_folder

    info = small_series(tmp_path / "ct")
    ds = pydicom.dcmread(info.files[3])
    ds.ImagePositionPatient = [float(v) for v in info.grid.ipp(3) + [0, 0, 0.9]]
    fx.save(ds, info.files[3])
    with pytest.raises(errors.MissingSliceError, match="irregular slice spacing"):
        read_image_series(scan_folder(tmp_path).image_series("CT")[0])
    ds.ImagePositionPatient = [float(v) for v in info.grid.ipp(3) + [0, 1.5, 0]]
    fx.save(ds, info.files[3])
    with pytest.raises(errors.UnsupportedSeriesError, match="gantry tilt"):
        read_image_series(scan_folder(tmp_path).image_series("CT")[0])


@pytest.mark.mrml
def test_two_cts_need_the_structure_set_to_choose(case_dir, tmp_path, scene):
    from SIBSpineSBRTLib.caseio.case_loader import load_dicom_case

    folder = copy_case(case_dir, tmp_path)
    small_series(folder / "old_ct", series_number=9, description="Diagnostic CT")
    case = load_dicom_case(folder, scene, load_mr=False)
    assert case.ct_series.series_uid == case_dir.ct.series_uid
    assert any("Diagnostic CT" in m and "not the planning CT" in m for m in case.messages)
    # the structure set decided; without it the choice is ambiguous
    (folder / "export" / "rt" / "structs").unlink()
    with pytest.raises(errors.AmbiguousSeriesError, match="2 CT series"):
        load_dicom_case(folder, scene)


# -- RTDOSE -------------------------------------------------------------------------------------------

DOSE_CASES = {
    # orientation, units, offsets style
    "HFP-relative-decreasing": ("HFP", "GY", "decreasing"),
    "HFS-absolute": ("HFS", "GY", "absolute"),
    "FFS-cGy": ("FFS", "CGY", "relative"),
}


@pytest.mark.parametrize("name", DOSE_CASES)
def test_rtdose_values_units_scaling_and_frame_offsets(tmp_path, name):
    from SIBSpineSBRTLib.caseio.rtdose import read_rtdose

    orientation, units, style = DOSE_CASES[name]
    # "decreasing": frames stored from the far end, so the offsets run negative along the normal
    step = -3.0 if style == "decreasing" else 3.0
    grid = fx.Grid(
        rows=9,
        cols=7,
        slices=5,
        pixel_spacing=(2.5, 3.0),
        slice_step=step,
        center=(10.3, -20.7, 55.5),
        iop=fx.ORIENTATIONS[orientation],
    )
    truth = np.stack([fx.dose_function(grid.lps(f)) for f in range(grid.slices)])
    offsets = [f * grid.slice_step for f in range(grid.slices)]
    if style == "absolute":
        offsets = [grid.ipp(f)[2] for f in range(grid.slices)]
    path = tmp_path / "dose.dcm"
    fx.write_rtdose(path, grid, truth, fx.uid(), fx.uid(), units=units, scaling=2.5e-5, offsets=offsets)
    dose = read_rtdose(path)
    assert dose.units == units and dose.scaling == pytest.approx(2.5e-5)
    grid_gy = dose.to_dose_grid()
    # every voxel centre: the value written there, at the RAS point DICOM puts it
    nk, nj, ni = dose.geometry.shape
    k, j, i = np.meshgrid(np.arange(nk), np.arange(nj), np.arange(ni), indexing="ij")
    ras = dose.geometry.ijk_to_ras_points(np.column_stack([i.ravel(), j.ravel(), k.ravel()]))
    expected = fx.dose_function(ras * [-1, -1, 1])
    assert np.allclose(grid_gy.array.ravel(), expected, atol=3e-5)
    # and trilinear sampling between voxels reproduces the linear dose
    inner = dose.geometry.ijk_to_ras_points(np.array([[2.3, 4.6, 1.7], [0.5, 0.5, 0.5]]))
    values, inside = grid_gy.sample(inner)
    assert inside.all() and np.allclose(values, fx.dose_function(inner * [-1, -1, 1]), atol=1e-4)


def test_rtdose_without_units_or_with_irregular_frames_is_refused(tmp_path):
    from SIBSpineSBRTLib.caseio.rtdose import read_rtdose
    from SIBSpineSBRTLib.dose.grid import DoseError

    grid = fx.Grid(rows=4, cols=5, slices=3, pixel_spacing=(2.0, 2.0), slice_step=2.0)
    dose = np.ones((3, 4, 5))
    fx.write_rtdose(tmp_path / "nounits", grid, dose, fx.uid(), fx.uid(), units=None)
    with pytest.raises(errors.DoseUnitsMissingError, match="DoseUnits") as exc:
        read_rtdose(tmp_path / "nounits")
    assert "nounits" in str(exc.value) and isinstance(exc.value, DoseError)
    fx.write_rtdose(tmp_path / "rel", grid, dose, fx.uid(), fx.uid(), units="RELATIVE")
    with pytest.raises(errors.RTDoseError, match="not a physical dose"):
        read_rtdose(tmp_path / "rel")
    fx.write_rtdose(tmp_path / "gaps", grid, dose, fx.uid(), fx.uid(), offsets=[0.0, 2.0, 5.0])
    with pytest.raises(errors.RTDoseError, match="not evenly spaced"):
        read_rtdose(tmp_path / "gaps")


@pytest.mark.mrml
def test_case_dose_without_units_is_named_and_can_be_recorded(case_dir, tmp_path, scene):
    from SIBSpineSBRTLib.caseio.case_loader import load_dicom_case

    folder = tmp_path / "c"
    fx.make_case(folder, with_mr=False, dose_units=None)
    with pytest.raises(errors.DoseUnitsMissingError, match="dose"):
        load_dicom_case(folder, scene)
    case = load_dicom_case(folder, scene, on_dose_error="record")
    assert case.dose is None and "DoseUnits" in case.dose_problem and case.segmentation is not None


@pytest.mark.mrml
def test_plan_dose_is_chosen_over_beam_doses_and_beam_doses_alone_are_refused(tmp_path, scene):
    from SIBSpineSBRTLib.caseio.case_loader import load_dicom_case

    case = fx.make_case(tmp_path / "c", with_mr=False)
    beam = np.ones((case.dose_grid.slices, case.dose_grid.rows, case.dose_grid.cols))
    for n in (1, 2):
        fx.write_rtdose(
            tmp_path / "c" / f"beam{n}", case.dose_grid, beam, case.ct.study_uid, case.ct.frame_uid, summation="BEAM"
        )
    loaded = load_dicom_case(tmp_path / "c", scene)
    assert loaded.rtdose.path == case.dose_path and loaded.rtdose.summation_type == "PLAN"
    case.dose_path.unlink()
    with pytest.raises(errors.RTDoseError, match="does not name its plan and beam.*beam doses alone are refused"):
        load_dicom_case(tmp_path / "c", scene)


# -- RTSTRUCT reading ---------------------------------------------------------------------------------


def test_even_odd_fill_matches_matplotlib():
    from matplotlib.path import Path as MplPath

    from SIBSpineSBRTLib.caseio.rtstruct_read import even_odd_fill

    rng = np.random.default_rng(3)
    j, i = np.mgrid[0:40, 0:50]
    centres = np.column_stack([i.ravel(), j.ravel()]).astype(float)
    for _ in range(20):
        rings = []
        for _ in range(rng.integers(1, 4)):
            n = rng.integers(3, 12)
            t = np.sort(rng.uniform(0, 2 * np.pi, n))
            r = rng.uniform(3, 20, n)
            c = rng.uniform(5, 40, 2)
            rings.append(np.column_stack([c[0] + r * np.cos(t), c[1] + r * np.sin(t)]) + rng.uniform(-0.3, 0.3))
        ours = even_odd_fill(rings, (40, 50))
        theirs = np.zeros(40 * 50, bool)
        for ring in rings:
            theirs ^= MplPath(ring).contains_points(centres)
        assert np.array_equal(ours.ravel(), theirs)


def test_holes_by_separate_contours_and_by_keyhole_give_the_same_ring(tmp_path):
    from SIBSpineSBRTLib.caseio.dicom_image import read_image_series
    from SIBSpineSBRTLib.caseio.dicom_scan import scan_folder
    from SIBSpineSBRTLib.caseio.rtstruct_read import read_rtstruct, structure_set_masks

    grid = fx.Grid(rows=40, cols=40, slices=5, pixel_spacing=(0.5, 0.5), slice_step=1.0)
    ct = fx.write_image_series(tmp_path / "ct", grid, np.zeros((5, 40, 40)))
    zs = [float(grid.ipp(k)[2]) for k in range(1, 4)]
    rois = [
        fx.Roi("Separate", [c for z in zs for c in (fx.circle(0.1, 0.2, 8, z), fx.circle(0.1, 0.2, 4, z))]),
        fx.Roi("Keyhole", [fx.keyhole(0.1, 0.2, 8, 4, z, n=180) for z in zs]),
        fx.Roi(
            "Island",
            [c for z in zs for c in (fx.circle(0.1, 0.2, 8, z), fx.circle(0.1, 0.2, 4, z), fx.circle(0.1, 0.2, 2, z))],
        ),
        fx.Roi("Marker", [np.array([[0.0, 0.0, zs[0]]])], geometric_type="POINT"),
    ]
    fx.write_rtstruct(tmp_path / "rs", ct, rois)
    ss = read_rtstruct(tmp_path / "rs")
    assert ss.roi_names == ["Separate", "Keyhole", "Island", "Marker"]
    assert ss.roi("Marker").contours[0].geometric_type == "POINT"
    geom = read_image_series(scan_folder(tmp_path / "ct").image_series("CT")[0]).geometry
    masks = structure_set_masks(ss, geom)
    assert dice(masks["Separate"].array, masks["Keyhole"].array) > 0.99
    ring_area = np.pi * (8**2 - 4**2)
    assert masks["Separate"].volume_cc == pytest.approx(3 * ring_area * 1.0 / 1000, rel=0.02)
    assert masks["Island"].volume_cc == pytest.approx(3 * (ring_area + np.pi * 4) / 1000, rel=0.03)
    assert masks["Marker"].is_empty


def test_contours_every_other_slice_fill_the_slices_between(tmp_path):
    from SIBSpineSBRTLib.caseio.dicom_image import read_image_series
    from SIBSpineSBRTLib.caseio.dicom_scan import scan_folder
    from SIBSpineSBRTLib.caseio.rtstruct_read import read_rtstruct, structure_set_masks

    grid = fx.Grid(rows=30, cols=30, slices=9, pixel_spacing=(0.6, 0.6), slice_step=1.5)
    ct = fx.write_image_series(tmp_path / "ct", grid, np.zeros((9, 30, 30)))
    zs = [float(grid.ipp(k)[2]) for k in (2, 4, 6)]
    fx.write_rtstruct(tmp_path / "rs", ct, [fx.Roi("Sparse", [fx.circle(0.1, 0.1, 5.0, z) for z in zs])])
    geom = read_image_series(scan_folder(tmp_path / "ct").image_series("CT")[0]).geometry
    mask = structure_set_masks(read_rtstruct(tmp_path / "rs"), geom)["Sparse"]
    filled = mask.array.any(axis=(1, 2))
    k_of_z = {round(float(geom.ijk_to_ras_points(np.array([[0, 0, k]]))[0, 2]), 3): k for k in range(9)}
    k_mid = k_of_z[round(zs[1], 3)]
    # three planes 3 mm apart, each a 3 mm slab (9 mm in all): the two CT slices between planes are filled, and of
    # the slices whose centres lie exactly on the outer slab ends (half-open slabs) one is in: 6 slices = 9 mm
    assert filled.sum() == 6 and filled[k_mid - 2 : k_mid + 3].all()


def test_raw_contours_feed_the_contour_dvh_engine(case_dir):
    from SIBSpineSBRTLib.caseio.rtstruct_read import read_rtstruct

    roi = read_rtstruct(case_dir.rtstruct_path).roi("CTV")
    structure = roi.to_contour_structure(slice_spacing_mm=2.0)
    # 10 planes of a 90-gon inscribed in a 12.1 x 9.13 mm ellipse, 2 mm slabs
    polygon_area = 0.5 * 90 * 12.1 * 9.13 * np.sin(2 * np.pi / 90)
    assert structure.volume_cc == pytest.approx(10 * 2.0 * polygon_area / 1000, rel=1e-5)  # points kept to 1e-4 mm


@pytest.mark.mrml
def test_structure_set_or_dose_from_another_frame_is_refused(tmp_path, scene):
    from SIBSpineSBRTLib.caseio.case_loader import load_dicom_case

    folder = tmp_path / "foreign_rs"
    case = fx.make_case(folder, with_mr=False, with_dose=False, structure_frame=fx.uid())
    with pytest.raises(errors.FrameOfReferenceError, match="structure set") as exc:
        load_dicom_case(folder, scene)
    assert str(case.rtstruct_path) in str(exc.value) and "not overlaid" in str(exc.value)
    folder = tmp_path / "foreign_dose"
    case = fx.make_case(folder, with_mr=False, dose_frame=fx.uid())
    with pytest.raises(errors.FrameOfReferenceError, match="dose") as exc:
        load_dicom_case(folder, scene, on_dose_error="record")  # a foreign frame is never just recorded
    assert str(case.dose_path) in str(exc.value)


# -- the whole case into MRML -------------------------------------------------------------------------


@pytest.mark.mrml
def test_case_folder_into_mrml(case_dir, scene):
    from SIBSpineSBRTLib.caseio.case_loader import load_dicom_case
    from SIBSpineSBRTLib.mrml import segmentations as segs
    from SIBSpineSBRTLib.mrml.volumes import DOSE_VOLUME_ATTRIBUTE, dose_unit, volume_array, volume_geometry

    case = load_dicom_case(case_dir.folder, scene)
    assert volume_geometry(case.ct).same_grid(case.ct_series.geometry, 1e-6)
    assert volume_array(case.ct).min() == -1000 and volume_array(case.ct).max() == 400  # HU after the rescale
    assert [n.GetName() for n in case.mr] == ["MR 5 T2 SAG", "MR 6 T1 other frame"]
    assert any("T1 other frame" in m and "not registered" in m for m in case.messages)
    names = [n for _, n in segs.segment_names(case.segmentation)]
    assert names == ["CTV", "GTV", "SpinalCanal", "Cord", "Ring"]
    assert segs.reference_geometry(case.segmentation).same_grid(case.ct_series.geometry, 1e-4)
    masks = segs.read_segments(case.segmentation)
    # CTV: an ellipse on 10 planes of 2 mm
    assert masks["CTV"].volume_cc == pytest.approx(np.pi * 12.1 * 9.13 * 10 * 2 / 1000, rel=0.01)
    assert case.dose.GetAttribute(DOSE_VOLUME_ATTRIBUTE) == "1" and dose_unit(scene.scene, case.dose) == "GY"
    assert case.prescription.total_dose_gy == 30.0 and case.prescription.fractions == 5
    assert case.prescription.describe() == "30 Gy in 5 fractions (boost to 40 Gy)"
    assert case.case_nodes().ct is case.ct
    # raw contours are kept for the contour-based DVH engine
    assert len(case.contours["CTV"].polygons_ras()) == 10
    data = case.case_input("T8", "synthetic")
    assert set(data.masks) == set(names) and data.dose is not None
    ras = case.ct_series.geometry.ijk_to_ras_points(np.array([[20.0, 30.0, 12.0]]))
    assert data.dose.sample(ras)[0][0] == pytest.approx(fx.dose_function(ras * [-1, -1, 1])[0], abs=1e-3)


# -- RTSTRUCT export and round trip ---------------------------------------------------------------------


def _ct(folder):
    from SIBSpineSBRTLib.caseio.dicom_image import read_image_series
    from SIBSpineSBRTLib.caseio.dicom_scan import scan_folder

    return read_image_series(scan_folder(folder).image_series("CT")[0])


def _test_masks(ct):
    """Masks on the CT grid: a smooth ellipsoid, a box with a hole and an island in it, a thin rod."""
    g = ct.geometry
    nk, nj, ni = g.shape
    k, j, i = np.meshgrid(np.arange(nk), np.arange(nj), np.arange(ni), indexing="ij")
    ras = g.ijk_to_ras_points(np.column_stack([i.ravel(), j.ravel(), k.ravel()])).reshape(nk, nj, ni, 3)
    x, y, z = ras[..., 0], ras[..., 1], ras[..., 2]
    ell = ((x - 1) / 11) ** 2 + ((y + 3) / 8) ** 2 + ((z - 10) / 14) ** 2 <= 1
    box = (np.abs(x + 12) < 8) & (np.abs(y - 10) < 7) & (np.abs(z - 8) < 9)
    hole = (np.abs(x + 12) < 4) & (np.abs(y - 10) < 3.5)
    island = (np.abs(x + 12) < 1.5) & (np.abs(y - 10) < 1.2)
    holed = box & ~hole | (box & island)
    rod = ((x - 14) ** 2 + (y - 12) ** 2 <= 2.2**2) & (np.abs(z - 5) < 12)
    return {"PTV": Mask(ell, g, "PTV"), "PTV_Eval": Mask(holed, g, "PTV_Eval"), "SpinalCord_PRV02": Mask(rod, g, "PRV")}


@pytest.mark.parametrize("orientation", ["HFS", "FFS"])
def test_round_trip_masks_to_rtstruct_and_back(tmp_path, orientation, capsys):
    import pydicom

    from SIBSpineSBRTLib.caseio.rtstruct_read import read_rtstruct, structure_set_masks
    from SIBSpineSBRTLib.caseio.rtstruct_write import RoiToWrite, write_rtstruct

    grid = fx.Grid(**{**fx.CT_GRID.__dict__, "iop": fx.ORIENTATIONS[orientation]})
    fx.write_image_series(tmp_path / "ct", grid, fx.ct_values(grid))
    ct = _ct(tmp_path / "ct")
    masks = _test_masks(ct)
    out = write_rtstruct(tmp_path / "out" / "rs.dcm", ct, [RoiToWrite(n, m, (1, 0.5, 0)) for n, m in masks.items()])
    back = structure_set_masks(read_rtstruct(out), ct.geometry)
    figures = {}
    for name, m in masks.items():
        b = back[name]
        figures[name] = (100 * (b.volume_cc - m.volume_cc) / m.volume_cc, dice(m.array, b.array))
        assert abs(figures[name][0]) <= 1.0 and figures[name][1] >= 0.98, (name, figures[name])
    print("round trip", orientation, {n: (round(v, 3), round(d, 4)) for n, (v, d) in figures.items()})

    ds = pydicom.dcmread(out)
    assert [r.ROIName for r in ds.StructureSetROISequence] == list(masks)
    assert ds.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID == ct.frame_of_reference_uid
    series = ds.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    assert series.SeriesInstanceUID == ct.series_uid
    assert [c.ReferencedSOPInstanceUID for c in series.ContourImageSequence] == ct.slice_sop_uids
    refs = {
        c.ContourImageSequence[0].ReferencedSOPInstanceUID for rc in ds.ROIContourSequence for c in rc.ContourSequence
    }
    assert refs <= set(ct.slice_sop_uids)
    assert str(ds.PatientName) == fx.PATIENT_NAME and ds.PatientID == fx.PATIENT_ID  # required copy from the CT
    assert ds.StudyInstanceUID == ct.study_uid and ds.Modality == "RTSTRUCT"
    assert fx.PATIENT_NAME.split("^")[0] not in capsys.readouterr().out


def test_contour_area_equals_voxel_area_on_every_slice(tmp_path):
    from SIBSpineSBRTLib.caseio.rtstruct_write import contours_from_mask

    fx.write_image_series(tmp_path / "ct", fx.CT_GRID, fx.ct_values(fx.CT_GRID))
    ct = _ct(tmp_path / "ct")
    si, sj, _ = ct.geometry.spacing
    for name, m in _test_masks(ct).items():
        for preserve, tol in ((True, 0.002), (False, None)):
            for k, rings in contours_from_mask(m, preserve_area=preserve).items():
                xy = [r[:, :2] for r in rings]  # axial CT: in-plane RAS x, y
                area = abs(
                    sum(0.5 * np.sum(p[:, 0] * np.roll(p[:, 1], -1) - np.roll(p[:, 0], -1) * p[:, 1]) for p in xy)
                )
                voxels = np.count_nonzero(m.array[k]) * si * sj
                if preserve:
                    assert area == pytest.approx(voxels, rel=tol), (name, k)
                else:  # plain marching squares cuts the staircase corners
                    assert area < voxels


def test_sub_voxel_occupancy_moves_the_contour_but_keeps_the_voxels(tmp_path):
    from SIBSpineSBRTLib.caseio.rtstruct_read import read_rtstruct, structure_set_masks
    from SIBSpineSBRTLib.caseio.rtstruct_write import RoiToWrite, contours_from_mask, write_rtstruct

    fx.write_image_series(tmp_path / "ct", fx.CT_GRID, fx.ct_values(fx.CT_GRID))
    ct = _ct(tmp_path / "ct")
    m = _test_masks(ct)["PTV"]
    occupancy = np.where(m.array, 0.6, 0.2)
    plain = contours_from_mask(m)
    fine = contours_from_mask(m, occupancy)
    k = sorted(plain)[len(plain) // 2]

    def area(ring):
        xy = ring[:, :2]
        return 0.5 * abs(np.sum(xy[:, 0] * np.roll(xy[:, 1], -1) - np.roll(xy[:, 0], -1) * xy[:, 1]))

    assert area(fine[k][0]) < area(plain[k][0])  # lower occupancy at the rim pulls the contour in
    out = write_rtstruct(tmp_path / "rs.dcm", ct, [RoiToWrite("PTV", m, occupancy=occupancy)])
    assert np.array_equal(structure_set_masks(read_rtstruct(out), ct.geometry)["PTV"].array, m.array)


def test_contours_too_long_for_explicit_vr_switch_to_implicit_vr(tmp_path, monkeypatch):
    import pydicom

    from SIBSpineSBRTLib.caseio import rtstruct_write
    from SIBSpineSBRTLib.caseio.rtstruct_read import read_rtstruct, structure_set_masks

    fx.write_image_series(tmp_path / "ct", fx.CT_GRID, fx.ct_values(fx.CT_GRID))
    ct = _ct(tmp_path / "ct")
    m = _test_masks(ct)["PTV"]
    monkeypatch.setattr(rtstruct_write, "_MAX_EXPLICIT_VALUE", 200)  # as if a contour had > 65534 bytes
    out = rtstruct_write.write_rtstruct(tmp_path / "rs.dcm", ct, [rtstruct_write.RoiToWrite("PTV", m)])
    assert pydicom.dcmread(out).file_meta.TransferSyntaxUID == pydicom.uid.ImplicitVRLittleEndian
    assert np.array_equal(structure_set_masks(read_rtstruct(out), ct.geometry)["PTV"].array, m.array)


def test_export_refuses_masks_off_the_ct_grid_and_name_clashes(case_dir):
    from SIBSpineSBRTLib.caseio.rtstruct_read import read_rtstruct
    from SIBSpineSBRTLib.caseio.rtstruct_write import RoiToWrite, build_rtstruct

    ct = _ct(case_dir.folder / "export" / "CT")
    m = _test_masks(ct)["PTV"]
    shifted = Mask(
        m.array,
        ct.geometry.crop((0, 0, 1), (ct.geometry.shape[0], ct.geometry.shape[1], ct.geometry.shape[2] + 1)),
        "PTV",
    )
    with pytest.raises(errors.ExportError, match="not on the planning CT's grid"):
        build_rtstruct(ct, [RoiToWrite("PTV", shifted)])
    source = read_rtstruct(case_dir.rtstruct_path)
    with pytest.raises(errors.ExportError, match="already has an ROI named 'CTV'"):
        build_rtstruct(ct, [RoiToWrite("CTV", m)], source=source)


@pytest.mark.mrml
@pytest.mark.parametrize("suffix", [".dcm", ".seg.nrrd"])
def test_volumes_from_dicom_writes_rtstruct_or_segmentation(case_dir, tmp_path, scene, suffix, capsys):
    import pydicom

    from SIBSpineSBRTLib.caseio.export import volumes_from_dicom
    from SIBSpineSBRTLib.caseio.rtstruct_read import read_rtstruct, structure_set_masks
    from SIBSpineSBRTLib.mrml import segmentations as segs
    from SIBSpineSBRTLib.mrml import storage

    out = tmp_path / f"volumes{suffix}"
    result = volumes_from_dicom(case_dir.folder, "T8", out, scene=scene)
    assert result.path == out and result.problems == {}
    assert set(result.volumes) == {"PTV", "PTV_Eval", "SpinalCord_PRV02"}
    derived = {n: v.mask for n, v in result.volumes.items()}
    if suffix == ".dcm":
        ds = pydicom.dcmread(out)
        names = [r.ROIName for r in ds.StructureSetROISequence]
        assert names == ["CTV", "GTV", "SpinalCanal", "Cord", "Ring", "PTV", "PTV_Eval", "SpinalCord_PRV02"]
        # the clinic's ROIs are copied verbatim
        original = pydicom.dcmread(case_dir.rtstruct_path)
        assert (
            ds.ROIContourSequence[0].ContourSequence[3].ContourData
            == original.ROIContourSequence[0].ContourSequence[3].ContourData
        )
        assert "PTV = CTV" in ds.StructureSetROISequence[5].ROIDescription
        back = structure_set_masks(read_rtstruct(out), result.case.ct_series.geometry)
    else:
        seg = storage.load_segmentation(scene.scene, out)
        back = segs.read_segments(seg)
        assert segs.segment_tag(seg, seg.GetSegmentation().GetSegmentIdBySegmentName("PTV"), segs.DERIVED_TAG) == "1"
    for name, m in derived.items():
        assert dice(back[name].array, m.array) >= 0.98 and back[name].volume_cc == pytest.approx(m.volume_cc, rel=0.01)
    printed = capsys.readouterr()
    assert fx.PATIENT_NAME.split("^")[0] not in printed.out + printed.err
    assert all(fx.PATIENT_NAME.split("^")[0] not in m and fx.PATIENT_ID not in m for m in result.messages)


def test_output_name_decides_the_format():
    from SIBSpineSBRTLib.caseio.export import output_kind

    assert output_kind("a/b.dcm") == "rtstruct" and output_kind("x.seg.nrrd") == "segmentation"
    with pytest.raises(errors.ExportError, match=r"\.seg\.nrrd"):
        output_kind("x.nrrd")


# -- RTPLAN -------------------------------------------------------------------------------------------


def test_plan_without_prescription_says_so(tmp_path):
    from SIBSpineSBRTLib.caseio.rtplan import read_rtplan

    fx.write_rtplan(tmp_path / "p", fx.uid(), fx.uid(), targets=(), fractions=3)
    p = read_rtplan(tmp_path / "p")
    assert p.total_dose_gy is None and p.fractions == 3 and "no prescription is assumed" in " ".join(p.notes)


# -- dicompyler-core cross-check (its own environment) -------------------------------------------------


# mrml: the cross-check runs ``volumes_from_dicom``, which loads the case into an MRML scene (slicer-core, no
# Python 3.9 wheel), so it runs in the 3.11 venv only. dicompyler-core itself runs in its own venv either way.
@pytest.mark.mrml
def test_dicompyler_reads_the_export(tmp_path):
    """dicompyler-core, in its own venv (made once, pinned: Testing/dicompyler_env.py), reads our RTSTRUCT
    with the same ROI names and volumes within 2%."""
    from dicompyler_env import dicompyler_python

    script = REPO / "Testing" / "benchmarks" / "dicompyler_crosscheck.py"
    run = subprocess.run(
        [
            sys.executable,
            str(script),
            "--work",
            str(tmp_path),
            "--dicompyler-python",
            dicompyler_python(),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
