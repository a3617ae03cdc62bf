"""Bad input files (issue 18): each is refused with a message that names the file, says what is wrong and how to
fix it, never a traceback or a native abort. Every file is written here, small, in ``tmp_path``.

Families:

* NRRD volumes and .seg.nrrd segmentations checked before slicer-core reads them (``mrml.storage``): 2-D,
  truncated (raw, gzip, detached data), a header-only huge extent, segment extents outside the labelmap, a
  dose where a segmentation is expected and the reverse, a .nrrd as a transform, a truncated NIfTI. The pure
  checks run everywhere; the command line runs each file in a child process, since before the checks existed
  slicer-core aborted the process (exit 134).
* DICOM: an all-zero RTDOSE, a CT whose orientation is flipped in its header only, a truncated RTSTRUCT, a CT
  slice cut before its series UID (a gap) or at an end of the stack.
* Bounded work: DVH curves of a dose x1000 keep at most ``MAX_CURVE_LEVELS`` levels and exact values.
* ``serve`` on a busy port or an out-of-range port: exit 2 with a message, before trame starts.
"""

import bz2
import gzip
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import dicom_fixtures as fx
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]

# -- NRRD files written by hand (no slicer-core): the same header fields Slicer writes -----------------------

LPS_DIRECTIONS = "(-0.98,0,0) (0,-0.98,0) (0,0,1.25)"
SEG_KEYS = {
    "Segment0_ID": "GTV",
    "Segment0_Name": "GTV",
    "Segment0_LabelValue": "1",
    "Segment0_Layer": "0",
    "Segment0_Extent": "2 11 2 9 2 8",
    "Segmentation_MasterRepresentation": "Binary labelmap",
    "Segmentation_ContainedRepresentationNames": "Binary labelmap|",
    "Segmentation_ReferenceImageExtentOffset": "0 0 0",
    "Segmentation_ConversionParameters": "Reference image geometry|0.98;0;0;1.5;0;0.98;0;-2;0;0;1.25;3;0;0;0;1;"
    "0;15;0;13;0;11;|Image geometry&",
}


def nrrd_bytes(array, type_name, encoding="raw", keys=None, fields=None, data=None, drop=()) -> bytes:
    """A NRRD file of ``array`` ([k, j, i], or [k, j, i, layer] with the layers as NRRD's fastest list axis, as
    Slicer writes overlapping segments); ``data`` replaces the encoded voxels."""
    array = np.asarray(array)
    sizes = " ".join(str(s) for s in array.shape[::-1])
    head = {
        "type": type_name,
        "dimension": str(array.ndim),
        "space": "left-posterior-superior",
        "sizes": sizes,
        "space directions": ("none " if array.ndim == 4 else "") + LPS_DIRECTIONS,
        "kinds": ("list " if array.ndim == 4 else "") + "domain domain domain",
        "endian": "little",
        "encoding": encoding,
        "space origin": "(-1.5,2,3)",
    }
    head.update(fields or {})
    lines = ["NRRD0004"] + [f"{k}: {v}" for k, v in head.items() if k not in drop and v is not None]
    lines += [f"{k}:={v}" for k, v in (keys or {}).items()]
    if data is None:
        raw = array.astype(array.dtype.newbyteorder("<")).tobytes()
        data = {"raw": raw, "gzip": gzip.compress(raw), "bzip2": bz2.compress(raw)}[encoding]
    return ("\n".join(lines) + "\n\n").encode() + data


def seg_array(shape=(12, 14, 16)):
    a = np.zeros(shape, np.uint8)
    a[3:9, 4:10, 5:12] = 1
    return a


def write(path, content: bytes) -> Path:
    path = Path(path)
    path.write_bytes(content)
    return path


@pytest.fixture
def storage():
    from SIBSpineSBRTLib.mrml import storage

    return storage


def test_good_nrrd_files_pass_the_checks(tmp_path, storage):
    seg = write(tmp_path / "s.seg.nrrd", nrrd_bytes(seg_array(), "unsigned char", "gzip", SEG_KEYS))
    assert storage.check_segmentation_file(seg).is_segmentation
    layers = np.stack([seg_array(), seg_array()[::-1]], axis=-1)  # overlapping segments: a list axis of layers
    seg4 = write(tmp_path / "layers.seg.nrrd", nrrd_bytes(layers, "uchar", "bzip2", SEG_KEYS))
    assert storage.check_segmentation_file(seg4).sizes == (2, 16, 14, 12)
    dose = write(tmp_path / "dose.nrrd", nrrd_bytes(np.full((12, 14, 16), 30.0, np.float32), "float", "gzip"))
    storage.check_volume_file(dose, "Dose volume")
    raw = np.arange(12 * 14 * 16, dtype=np.int16).reshape(12, 14, 16)
    (tmp_path / "ct.raw").write_bytes(raw.tobytes())
    header = nrrd_bytes(raw, "short", fields={"data file": "ct.raw"}, data=b"")
    storage.check_volume_file(write(tmp_path / "ct.nhdr", header), "CT volume")


@pytest.mark.parametrize(
    "case, expected",
    [
        ("two_d", "dimension 2"),
        ("truncated_raw", "truncated"),
        ("truncated_gzip", "truncated"),
        ("garbled_gzip", "corrupt"),
        ("huge_extent", "memory"),
        ("segment_extent_outside", "extent"),
        ("huge_reference_grid", "memory"),
        ("negative_size", "positive"),
        ("text_encoding", "encoding"),
        ("dose_as_segmentation", "not a segmentation"),
        ("not_nrrd", "not a NRRD file"),
        ("empty", "empty"),
    ],
)
def test_bad_segmentation_files_are_refused_before_itk(tmp_path, storage, case, expected):
    a = seg_array()
    raw = a.tobytes()
    content = {
        "two_d": lambda: nrrd_bytes(
            a.reshape(168, 16), "uchar", keys=SEG_KEYS, fields={"space directions": "(-0.98,0,0) (0,-0.98,0)"}
        ),
        "truncated_raw": lambda: nrrd_bytes(a, "uchar", keys=SEG_KEYS, data=raw[: len(raw) // 2]),
        "truncated_gzip": lambda: nrrd_bytes(
            a, "uchar", "gzip", SEG_KEYS, data=gzip.compress(np.random.default_rng(0).bytes(len(raw)))[:600]
        ),
        "garbled_gzip": lambda: nrrd_bytes(a, "uchar", "gzip", SEG_KEYS, data=gzip.compress(raw)[:10] + b"x" * 40),
        "huge_extent": lambda: nrrd_bytes(a, "uchar", keys=SEG_KEYS, fields={"sizes": "4000 4000 4000"}, data=b""),
        "segment_extent_outside": lambda: nrrd_bytes(
            a, "uchar", keys={**SEG_KEYS, "Segment0_Extent": "0 3999 0 3999 0 3999"}
        ),
        "huge_reference_grid": lambda: nrrd_bytes(
            a,
            "uchar",
            keys={
                **SEG_KEYS,
                "Segmentation_ConversionParameters": "Reference image geometry|0.98;0;0;1.5;0;0.98;0;-2;0;0;1.25;3;"
                "0;0;0;1;0;3999;0;3999;0;3999;|x&",
            },
        ),
        "negative_size": lambda: nrrd_bytes(a, "uchar", keys=SEG_KEYS, fields={"sizes": "16 -14 12"}),
        "text_encoding": lambda: nrrd_bytes(a, "uchar", keys=SEG_KEYS, fields={"encoding": "ascii"}),
        "dose_as_segmentation": lambda: nrrd_bytes(np.full(a.shape, 30.0, np.float32), "float"),
        "not_nrrd": lambda: b"GTV,CTV\n1,2\n",
        "empty": lambda: b"",
    }[case]()
    path = write(tmp_path / "input.seg.nrrd", content)  # a neutral name: the message must say it
    with pytest.raises(storage.StorageError) as exc:
        storage.check_segmentation_file(path)
    assert str(path) in str(exc.value) and expected in str(exc.value), str(exc.value)


def test_bad_volume_files_are_refused_before_itk(tmp_path, storage):
    dose = np.full((12, 14, 16), 30.0, np.float32)
    raw = dose.tobytes()
    cases = {
        "huge.nrrd": (nrrd_bytes(dose, "float", fields={"sizes": "4000 4000 4000"}, data=b""), "memory"),
        "cut.nrrd": (nrrd_bytes(dose, "float", data=raw[:1000]), "truncated"),
        "flat.nrrd": (
            nrrd_bytes(dose.reshape(168, 16), "float", fields={"space directions": "(1,0,0) (0,1,0)"}),
            "3-D",
        ),
        "seg.nrrd": (nrrd_bytes(seg_array(), "uchar", keys=SEG_KEYS), "is a segmentation"),
        "detached.nhdr": (nrrd_bytes(dose, "float", fields={"data file": "gone.raw"}, data=b""), "gone.raw"),
        "parallel.nrrd": (
            nrrd_bytes(dose, "float", fields={"space directions": "(1,0,0) (1,0,0) (0,0,1)"}),
            "degenerate",
        ),
    }
    for name, (content, expected) in cases.items():
        path = write(tmp_path / name, content)
        with pytest.raises(storage.StorageError) as exc:
            storage.check_volume_file(path, "Dose volume")
        assert str(path) in str(exc.value) and expected in str(exc.value), (name, str(exc.value))


def test_memory_estimate_uses_the_available_memory(tmp_path, storage, monkeypatch):
    path = write(tmp_path / "ct.nrrd", nrrd_bytes(np.zeros((12, 14, 16), np.int16), "short", "gzip"))
    storage.check_volume_file(path, "CT volume")
    assert storage.available_memory_bytes() > 0
    monkeypatch.setattr(storage, "available_memory_bytes", lambda: 1000)
    with pytest.raises(storage.StorageError, match="needs about .* more than the .* available"):
        storage.check_volume_file(path, "CT volume")


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_truncated_nifti_and_other_formats(tmp_path, storage, suffix):
    import SimpleITK as sitk

    good = tmp_path / f"dose{suffix}"
    sitk.WriteImage(sitk.GetImageFromArray(np.full((12, 14, 16), 30.0, np.float32)), str(good))
    storage.check_volume_file(good, "Dose volume")
    cut = write(tmp_path / f"cut{suffix}", good.read_bytes()[: good.stat().st_size * 2 // 3])
    with pytest.raises(storage.StorageError, match=r"cut\.nii.*truncated"):
        storage.check_volume_file(cut, "Dose volume")
    junk = write(tmp_path / "junk.mha", b"this is not an image\n")
    with pytest.raises(storage.StorageError, match=r"junk\.mha is not a readable Dose volume file"):
        storage.check_volume_file(junk, "Dose volume")


def test_a_volume_is_not_a_transform(tmp_path, storage):
    path = write(tmp_path / "mr_to_ct.nrrd", nrrd_bytes(np.zeros((4, 4, 4), np.int16), "short"))
    with pytest.raises(storage.StorageError, match=r"mr_to_ct\.nrrd is an image volume .* not a linear transform"):
        storage.check_transform_file(path, "MR to CT transform")


# -- the command line on bad files: a child process (slicer-core aborted the process before the checks) ------


def sibspine(*args, timeout=120):
    exe = Path(sys.executable).with_name("sibspine")
    return subprocess.run([str(exe), *map(str, args)], cwd=REPO, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def slicer_files(tmp_path, scene):
    """A segmentation, CT and dose saved by slicer-core, and bad variants of each."""
    from SIBSpineSBRTLib.geometry.grid import ImageGeometry
    from SIBSpineSBRTLib.geometry.masks import Mask
    from SIBSpineSBRTLib.mrml import segmentations as segs
    from SIBSpineSBRTLib.mrml import storage
    from SIBSpineSBRTLib.mrml.volumes import add_volume

    g = ImageGeometry((12, 14, 16), (1.5, -2.0, 3.0), (0.98, 0.98, 1.25))
    node = segs.new_segmentation(scene.scene, "S", g)
    segs.add_source_segment(node, Mask(seg_array(), g, "GTV"), "GTV", (1, 0, 0))
    files = {"seg": Path(storage.save_segmentation(scene.scene, node, tmp_path / "s.seg.nrrd"))}
    for name, arr in (("ct", np.zeros(g.shape, np.int16)), ("dose", np.full(g.shape, 30.0, np.float32))):
        files[name] = Path(
            storage.save_volume(scene.scene, add_volume(scene.scene, arr, g, name), tmp_path / f"{name}.nrrd")
        )
    seg = files["seg"].read_bytes()
    head, data = seg.split(b"\n\n", 1)
    header = head.decode()
    voxels = gzip.decompress(data) if "encoding: gzip" in header else data
    raw_header = header.replace("encoding: gzip", "encoding: raw")
    files["two_d"] = write(
        tmp_path / "two_d.seg.nrrd",
        (
            raw_header.replace("dimension: 3", "dimension: 2")
            .replace("sizes: 16 14 12", "sizes: 16 168")
            .replace(" (0,0,1.2500000000000004)", "")
            .replace("kinds: domain domain domain", "kinds: domain domain")
            + "\n\n"
        ).encode()
        + voxels,
    )
    files["truncated"] = write(tmp_path / "cut.seg.nrrd", (raw_header + "\n\n").encode() + voxels[:1000])
    files["huge"] = write(
        tmp_path / "huge.seg.nrrd", (raw_header.replace("sizes: 16 14 12", "sizes: 4000 4000 4000") + "\n\n").encode()
    )
    files["huge_dose"] = write(
        tmp_path / "huge_dose.nrrd",
        nrrd_bytes(np.zeros(1, np.float32).reshape(1, 1, 1), "float", fields={"sizes": "4000 4000 4000"}, data=b""),
    )
    files["truncated_dose"] = write(
        tmp_path / "short_dose.nrrd", nrrd_bytes(np.full(g.shape, 30.0, np.float32), "float", data=b"\0" * 999)
    )
    return files


BASE = ("review", "--dose-unit", "Gy", "--level", "T8", "--no-report")


@pytest.mark.mrml
@pytest.mark.parametrize(
    "case, expected",
    [
        ("two_d", "dimension 2"),
        ("truncated", "truncated"),
        ("huge", "memory"),
        ("huge_dose", "memory"),
        ("truncated_dose", "truncated"),
        ("dose_as_segmentation", "not a segmentation"),
        ("nrrd_as_transform", "not a linear transform"),
        ("segmentation_as_ct", "is a segmentation"),
    ],
)
def test_cli_refuses_bad_files_with_exit_2(slicer_files, tmp_path, case, expected):
    f = slicer_files
    seg, dose, extra, named = f["seg"], f["dose"], [], None
    if case in ("two_d", "truncated", "huge"):
        seg = named = f[case]
    elif case in ("huge_dose", "truncated_dose"):
        dose = named = f[case]
    elif case == "dose_as_segmentation":
        seg = named = f["dose"]
    elif case == "nrrd_as_transform":
        extra, named = ["--ct", f["ct"], "--mr", f["ct"], "--mr-transform", f["ct"]], f["ct"]
    elif case == "segmentation_as_ct":
        extra, named = ["--ct", f["seg"]], f["seg"]
    proc = sibspine(*BASE, "--segmentation", seg, "--dose", dose, *extra, "--out", tmp_path / "out")
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    message = "\n".join(line for line in proc.stderr.splitlines() if line.startswith("Error: "))
    assert str(named) in message and expected in message, proc.stderr[-2000:]


# -- DICOM -------------------------------------------------------------------------------------------------


def zero_dose_case(tmp_path):
    case = fx.make_case(tmp_path / "case", with_mr=False)
    g = case.dose_grid
    fx.write_rtdose(case.dose_path, g, np.zeros((g.slices, g.rows, g.cols)), case.ct.study_uid, case.ct.frame_uid)
    return case


def test_all_zero_rtdose_is_a_named_dose_error(tmp_path):
    from SIBSpineSBRTLib.caseio.errors import RTDoseError
    from SIBSpineSBRTLib.caseio.rtdose import read_rtdose
    from SIBSpineSBRTLib.dose.grid import DoseError

    case = zero_dose_case(tmp_path)
    with pytest.raises(RTDoseError, match="the dose is zero everywhere") as exc:
        read_rtdose(case.dose_path)
    assert isinstance(exc.value, DoseError) and str(case.dose_path) in str(exc.value)


@pytest.mark.mrml
def test_all_zero_rtdose_review_says_why(tmp_path, capsys):
    from SIBSpineSBRTLib.frontends.cli import main

    case = zero_dose_case(tmp_path)
    assert (
        main(["review", "--dicom", str(case.folder), "--level", "T8", "--no-report", "--out", str(tmp_path / "o")]) == 2
    )
    out = capsys.readouterr()
    text = out.out + out.err
    assert "the dose is zero everywhere" in text and str(case.dose_path) in text
    assert "-1.09e-09" not in text and "Traceback" not in text


def flip_ct(case, how):
    import pydicom

    for path in case.ct.files:
        ds = pydicom.dcmread(path)
        iop = [float(v) for v in ds.ImageOrientationPatient]
        ds.ImageOrientationPatient = [-v for v in iop] if how == "both" else [-v for v in iop[:3]] + iop[3:]
        ds.save_as(path)


@pytest.mark.parametrize("how", ["both", "row"])
def test_ct_orientation_flipped_in_the_header_only(tmp_path, how):
    from SIBSpineSBRTLib.caseio.case_loader import choose_ct_and_structures
    from SIBSpineSBRTLib.caseio.dicom_scan import scan_folder
    from SIBSpineSBRTLib.caseio.errors import CaseIOError, SeriesGeometryError

    case = fx.make_case(tmp_path / "case", with_mr=False, with_dose=False, with_plan=False)
    scan = scan_folder(case.folder)
    choose_ct_and_structures(scan, None, None, [])  # as exported: no complaint
    flip_ct(case, how)
    with pytest.raises(CaseIOError) as exc:
        choose_ct_and_structures(scan_folder(case.folder), None, None, [])
    text = str(exc.value)
    assert isinstance(exc.value, SeriesGeometryError)
    assert "CT series 2 'Planning CT'" in text and str(case.rtstruct_path) in text
    assert "Image Orientation (Patient)" in text and "flipped" in text


def test_truncated_rtstruct_is_named_not_missing(tmp_path):
    from SIBSpineSBRTLib.caseio.case_loader import choose_ct_and_structures
    from SIBSpineSBRTLib.caseio.dicom_scan import scan_folder
    from SIBSpineSBRTLib.caseio.errors import CaseIOError

    case = fx.make_case(tmp_path / "case", with_mr=False, with_dose=False, with_plan=False)
    data = case.rtstruct_path.read_bytes()
    case.rtstruct_path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CaseIOError) as exc:
        choose_ct_and_structures(scan_folder(case.folder), None, None, [])
    text = str(exc.value)
    assert str(case.rtstruct_path) in text and "truncated or corrupt" in text and "RTSTRUCT" in text


@pytest.mark.mrml
def test_truncated_rtstruct_cli_message(tmp_path, capsys):
    from SIBSpineSBRTLib.frontends.cli import main

    case = fx.make_case(tmp_path / "case", with_mr=False)
    data = case.rtstruct_path.read_bytes()
    case.rtstruct_path.write_bytes(data[: len(data) // 2])
    assert (
        main(["review", "--dicom", str(case.folder), "--level", "T8", "--no-report", "--out", str(tmp_path / "o")]) == 2
    )
    err = capsys.readouterr().err
    assert "has no RTSTRUCT" not in err and str(case.rtstruct_path) in err and "truncated" in err


@pytest.mark.parametrize("slice_index, cut", [(10, 300), (10, 420), (25, 3000)])
def test_cut_ct_slice_is_named(tmp_path, slice_index, cut):
    """Cut before its series UID (the gap cannot be blamed by series) or cut at an end of the stack (no gap)."""
    from SIBSpineSBRTLib.caseio.dicom_image import read_image_series
    from SIBSpineSBRTLib.caseio.dicom_scan import scan_folder
    from SIBSpineSBRTLib.caseio.errors import MissingSliceError

    case = fx.make_case(tmp_path / "case", with_mr=False, with_dose=False, with_plan=False)
    bad = case.ct.files[slice_index]
    bad.write_bytes(bad.read_bytes()[:cut])
    scan = scan_folder(case.folder)
    with pytest.raises(MissingSliceError) as exc:
        read_image_series(scan.image_series("CT")[0], scan)
    assert str(bad) in str(exc.value)


# -- bounded work: DVH curves ------------------------------------------------------------------------------


def box_dvh(name="GTV", n=300, seed=3):
    from SIBSpineSBRTLib.dose.dvh import DVH

    rng = np.random.default_rng(seed)
    doses = np.sort(rng.uniform(20.0, 45.0, n))[::-1]
    cum = np.cumsum(rng.uniform(0.001, 0.003, n))
    return DVH(name, doses, cum, float(cum[-1]), 0.0, spreads=rng.uniform(0.1, 1.0, (n, 3)))


def test_dvh_curve_of_a_dose_x1000_has_bounded_levels_and_exact_values():
    from SIBSpineSBRTLib.dose.dvh import MAX_CURVE_LEVELS, curve_step_gy

    for factor in (1.0, 1000.0):
        dvh = box_dvh().scaled(factor)
        levels, percent = dvh.curve()
        assert len(levels) <= MAX_CURVE_LEVELS and levels[-1] > dvh.max and len(levels) >= 200
        picks = [0, len(levels) // 3, len(levels) // 2, len(levels) - 2]
        exact = 100 * dvh.volumes_at_doses_cc(levels[picks]) / dvh.evaluated_volume_cc
        np.testing.assert_allclose(percent[picks], exact, atol=1e-9)
        assert curve_step_gy(dvh.max) == pytest.approx(levels[1])
    assert len(box_dvh().scaled(1000.0).curve(0.1)[0]) <= MAX_CURVE_LEVELS  # a fine step asked for is widened


def test_review_curves_share_one_bounded_step():
    from SIBSpineSBRTLib.dose.dvh import MAX_CURVE_LEVELS
    from SIBSpineSBRTLib.review.pipeline import ReviewResult

    dvhs = {"GTV": box_dvh("GTV").scaled(1000.0), "SpinalCord": box_dvh("SpinalCord", seed=4).scaled(500.0)}
    stub = SimpleNamespace(
        protocol=SimpleNamespace(
            constraints=[SimpleNamespace(structure="GTV")], structures={"GTV": 0, "SpinalCord": 0}
        ),
        dvhs=dvhs,
    )
    curves = ReviewResult.dvh_curves(stub)
    assert list(curves) == ["GTV", "SpinalCord"]
    for name, (dose, pct) in curves.items():
        assert len(dose) <= MAX_CURVE_LEVELS
        assert pct[len(dose) // 2] == pytest.approx(
            100 * dvhs[name].volume_at_dose_cc(dose[len(dose) // 2]) / dvhs[name].evaluated_volume_cc, abs=1e-9
        )
    assert np.array_equal(curves["GTV"][0][:10], curves["SpinalCord"][0][:10])


def test_report_figure_uses_the_same_step_rule():
    from SIBSpineSBRTLib.dose import dvh
    from SIBSpineSBRTLib.report import figures

    assert figures.dvh_dose_step is dvh.curve_step_gy and figures.MAX_DOSE_LEVELS == dvh.MAX_CURVE_LEVELS


# -- serve: the port is checked before trame starts ----------------------------------------------------------


class _PastThePortCheck(Exception):
    pass


def test_serve_port_out_of_range_is_a_usage_error(capsys):
    from SIBSpineSBRTLib.frontends.web.app import build_parser

    for bad in ("70000", "-1", "http"):
        with pytest.raises(SystemExit) as exc:
            build_parser().parse_args(["--port", bad])
        assert exc.value.code == 2 and "--port" in capsys.readouterr().err
    assert build_parser().parse_args([]).port == 0 and build_parser().parse_args(["--port", "8080"]).port == 8080


def test_serve_on_a_busy_port_exits_2_before_starting(monkeypatch, capsys):
    from SIBSpineSBRTLib.frontends.web import app

    monkeypatch.setattr(sys, "argv", list(sys.argv))  # serve() trims sys.argv for trame
    monkeypatch.setenv("DISPLAY", "unused:0")  # so that serve() leaves the VTK window setting alone

    def past(*_):
        raise _PastThePortCheck("serve went on past the port check")

    monkeypatch.setattr(app, "seconds_since_process_start", past)  # the first step after the checks
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        assert app.run(app.build_parser().parse_args(["--port", str(port)])) == 2
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and f"Port {port}" in err and "already in use" in err
    with pytest.raises(_PastThePortCheck):  # a free port goes on to start the server
        app.run(app.build_parser().parse_args(["--port", str(app.free_port())]))
