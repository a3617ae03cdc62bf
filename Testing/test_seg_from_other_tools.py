"""Segmentation files from other tools: a .seg.nrrd without Slicer's "Reference image geometry" (as slicerio and
many pipelines write it) is read on the file's own grid, with a message, and gives the same numbers as the file
Slicer saves with its reference geometry: ``review``, ``volumes`` and ``dvh``."""

import json
from pathlib import Path

import numpy as np
import pytest

from SIBSpineSBRTLib.frontends.cli import main

pytestmark = pytest.mark.mrml

NOTE = "no reference geometry: the segments are read on the file's own grid"


def _strip_header(src: Path, dst: Path, drop) -> Path:
    """A copy of NRRD ``src`` with the header lines starting with ``drop`` removed; the data kept as they are."""
    head, data = src.read_bytes().split(b"\n\n", 1)
    lines = [ln for ln in head.decode("latin-1").split("\n") if not ln.startswith(tuple(drop))]
    dst.write_bytes(("\n".join(lines) + "\n\n").encode("latin-1") + data)
    return dst


@pytest.fixture(scope="module")
def files(tmp_path_factory, thoracic_case):
    """The thoracic phantom's segmentation as Slicer saves it, as slicerio writes it (segments of their own
    minimal extents, no reference geometry) and with the reference geometry cut from Slicer's header; its dose."""
    from SIBSpineSBRTLib.geometry.masks import Mask
    from SIBSpineSBRTLib.mrml import segmentations as segs
    from SIBSpineSBRTLib.mrml import storage
    from SIBSpineSBRTLib.mrml.scene import new_scene
    from SIBSpineSBRTLib.mrml.volumes import add_volume

    root = tmp_path_factory.mktemp("seg_other_tools")
    pc, ctx = thoracic_case, new_scene()
    g = pc.ct_geometry
    node = segs.new_segmentation(ctx.scene, "seg", g)
    for n, arr in pc.segments.items():
        segs.add_source_segment(node, Mask(arr, g, n), n, pc.colors.get(n, (0.5, 0.5, 0.5)))
    out = {"slicer": Path(storage.save_segmentation(ctx.scene, node, root / "slicer.seg.nrrd"))}
    dose = add_volume(ctx.scene, pc.dose_gy.astype(np.float32), pc.dose_geometry, "Dose")
    out["dose"] = Path(storage.save_volume(ctx.scene, dose, root / "dose.nrrd"))
    head = out["slicer"].read_bytes().split(b"\n\n", 1)[0].decode("latin-1")
    for key in ("Segmentation_ConversionParameters:=", "Segmentation_ReferenceImageExtentOffset:=", "_Extent:="):
        assert key in head, key  # what Slicer writes, and the copies below do without
    out["edited"] = _strip_header(
        out["slicer"],
        root / "edited.seg.nrrd",
        ("Segmentation_ConversionParameters", "Segmentation_ReferenceImageExtentOffset"),
    )
    try:
        import slicerio  # a test dependency (requirements/py311.lock); without it only the edited copy is tested
    except ImportError:
        return out
    lps_from_ras = np.diag([-1.0, -1.0, 1.0, 1.0])
    s = slicerio.create_segmentation(g.shape[::-1], lps_from_ras @ g.ijk_to_ras)
    for n, arr in pc.segments.items():  # our arrays are (k, j, i); slicerio's (i, j, k)
        slicerio.add_segment(
            s, arr.transpose(2, 1, 0), {"id": n, "name": n, "color": list(pc.colors.get(n, (1, 0, 0)))}
        )
    out["slicerio"] = root / "slicerio.seg.nrrd"
    slicerio.write_segmentation(str(out["slicerio"]), s)
    head = out["slicerio"].read_bytes().split(b"\n\n", 1)[0].decode("latin-1")
    assert "Reference image geometry" not in head
    extents = [ln for ln in head.split("\n") if "_Extent:=" in ln]
    full = f"0 {g.shape[2] - 1} 0 {g.shape[1] - 1} 0 {g.shape[0] - 1}"
    assert extents and all(not ln.endswith(full) for ln in extents)  # every segment a sub-extent of the grid
    return out


OTHER = ["slicerio", "edited"]


def _need(files, which):
    if which not in files:
        pytest.skip(f"{which} is not installed")


def _run(argv, capsys):
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_masks_are_placed_right(files, thoracic_case):
    from SIBSpineSBRTLib.mrml import segmentations as segs
    from SIBSpineSBRTLib.mrml import storage
    from SIBSpineSBRTLib.mrml.scene import new_scene

    ctx = new_scene()
    for which in [w for w in OTHER if w in files]:
        node = storage.load_segmentation(ctx.scene, files[which])
        assert not segs.has_reference_geometry(node)
        with pytest.warns(UserWarning, match=NOTE):
            masks = segs.read_segments(node)
        for n, arr in thoracic_case.segments.items():
            assert masks[n].geometry.same_grid(thoracic_case.ct_geometry, 1e-4), (which, n)
            assert np.array_equal(masks[n].array, arr), (which, n)


@pytest.mark.parametrize("which", OTHER)
def test_review_same_numbers(files, which, tmp_path, capsys):
    _need(files, which)
    docs = {}
    for name in ("slicer", which):
        out = tmp_path / name
        argv = ["review", "--segmentation", files[name], "--dose", files["dose"], "--dose-unit", "Gy", "--level"]
        rc, said, err = _run(argv + ["T8", "--no-report", "--out", out], capsys)
        assert rc == 0, err
        docs[name] = json.loads((out / "metrics.json").read_text())
        assert (said + err).count(NOTE) == (0 if name == "slicer" else 1), said + err  # said once
    assert NOTE in json.dumps(docs[which])  # the message is in the review's own output too
    want = {(r["structure"], r["metric"]): r for r in docs["slicer"]["rows"]}
    got = {(r["structure"], r["metric"]): r for r in docs[which]["rows"]}
    assert set(got) == set(want) and want
    assert docs[which]["verdict"] == docs["slicer"]["verdict"]
    for key, row in want.items():
        assert got[key]["status"] == row["status"], key
        if row["value"] is None:
            assert got[key]["value"] is None, key
        else:
            assert got[key]["value"] == pytest.approx(row["value"], abs=1e-6), key


@pytest.mark.parametrize("which", OTHER)
def test_volumes_identical(files, which, tmp_path, capsys):
    _need(files, which)
    from SIBSpineSBRTLib.mrml import segmentations as segs
    from SIBSpineSBRTLib.mrml import storage
    from SIBSpineSBRTLib.mrml.scene import new_scene

    built = {}
    for name in ("slicer", which):
        out = tmp_path / f"{name}_volumes.seg.nrrd"
        rc, _, err = _run(["volumes", "--segmentation", files[name], "--level", "T8", "--out", out], capsys)
        assert rc == 0, err
        assert (NOTE in err) == (name != "slicer"), err
        built[name] = out
    ctx = new_scene()
    reference = segs.reference_geometry(storage.load_segmentation(ctx.scene, built["slicer"]))
    masks = {
        n: segs.read_segments(storage.load_segmentation(ctx.scene, p), geometry=reference) for n, p in built.items()
    }
    assert set(masks["slicer"]) == set(masks[which])
    assert {"PTV", "PTV_Eval", "SpinalCord_PRV02"} <= set(masks[which])
    for n, m in masks["slicer"].items():
        assert m.voxel_count > 0 or n not in ("PTV", "PTV_Eval", "SpinalCord_PRV02"), n
        assert np.array_equal(masks[which][n].array, m.array), n


@pytest.mark.parametrize("which", OTHER)
def test_dvh_same_numbers(files, which, capsys):
    _need(files, which)
    docs = {}
    for name in ("slicer", which):
        argv = ["dvh", "--segmentation", files[name], "--dose", files["dose"], "--dose-unit", "Gy", "--json"]
        rc, out, err = _run(argv, capsys)
        assert rc == 0, err
        docs[name] = json.loads(out)
    assert any(NOTE in w for w in docs[which]["warnings"]), docs[which]["warnings"]
    want, got = docs["slicer"]["structures"], docs[which]["structures"]
    assert set(got) == set(want) and want
    for n, row in want.items():
        for metric, value in row.items():
            if value is None:
                assert got[n][metric] is None, (n, metric)
            else:
                assert got[n][metric] == pytest.approx(value, abs=1e-6), (n, metric)
