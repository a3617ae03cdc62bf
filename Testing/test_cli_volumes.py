"""``sibspine volumes``: input segments unchanged plus the planning volumes; bad input named, nothing written."""

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO

pytestmark = pytest.mark.mrml


def run(*args):
    exe = Path(sys.executable).with_name("sibspine")
    return subprocess.run([str(exe), *map(str, args)], cwd=REPO, capture_output=True, text=True, timeout=300)


def digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def case_file(tmp_path_factory, demo_case):
    from SIBSpineSBRTLib.mrml import storage
    from SIBSpineSBRTLib.mrml.case import add_case_nodes
    from SIBSpineSBRTLib.mrml.scene import new_scene

    folder = tmp_path_factory.mktemp("volumes")
    ctx = new_scene()
    nodes = add_case_nodes(ctx.scene, demo_case)
    storage.save_segmentation(ctx.scene, nodes.segmentation, folder / "in.seg.nrrd")
    return folder / "in.seg.nrrd"


def read(path):
    from SIBSpineSBRTLib.mrml import segmentations as segs
    from SIBSpineSBRTLib.mrml import storage
    from SIBSpineSBRTLib.mrml.scene import new_scene

    ctx = new_scene()
    node = storage.load_segmentation(ctx.scene, path)
    geometry = segs.reference_geometry(node)
    names = segs.segment_names(node)
    tags = {n: segs.segment_tag(node, sid, segs.RECIPE_TAG) for sid, n in names}
    return geometry, segs.read_segments(node), tags, ctx


def test_volumes_written_with_inputs_unchanged(case_file, tmp_path, protocol):
    from SIBSpineSBRTLib.geometry.margins import Margins, expand

    before = digest(case_file)
    out = tmp_path / "out.seg.nrrd"
    proc = run("volumes", "--segmentation", case_file, "--level", "T8", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert digest(case_file) == before
    g_in, masks_in, _, _ = read(case_file)
    g_out, masks_out, tags, _ = read(out)
    assert g_out.same_grid(g_in)
    assert list(masks_out) == list(masks_in) + ["PTV", "PTV_Eval", "SpinalCord_PRV02"]
    for name, m in masks_in.items():
        assert np.array_equal(masks_out[name].array, m.array), name
    ptv = expand(masks_in["CTV"], Margins.axial_si(2, 5))
    assert np.array_equal(masks_out["PTV"].array, ptv.array)
    assert np.array_equal(masks_out["PTV_Eval"].array, ptv.array & ~masks_in["SpinalCanal"].array)
    assert np.array_equal(
        masks_out["SpinalCord_PRV02"].array, expand(masks_in["SpinalCord"], Margins.isotropic(2)).array
    )
    assert "2 mm axial, 5 mm SI" in tags["PTV"] and "T8" in tags["PTV"] and tags["CTV"] is None


def test_margin_and_role_overrides(case_file, tmp_path):
    from SIBSpineSBRTLib.geometry.margins import Margins, expand

    out = tmp_path / "o.seg.nrrd"
    proc = run(
        "volumes",
        "--segmentation",
        case_file,
        "--level",
        "T8",
        "--out",
        out,
        "--ptv-margin-mm",
        "1,2,3,4,5,6",
        "--prv-margin-mm",
        "3",
        "--role",
        "SpinalCanal=ThecalSac",
    )
    assert proc.returncode == 0, proc.stderr
    _, masks_in, _, _ = read(case_file)
    _, masks_out, tags, _ = read(out)
    ptv = expand(masks_in["CTV"], Margins(1, 2, 3, 4, 5, 6)).array
    assert np.array_equal(masks_out["PTV"].array, ptv)
    assert np.array_equal(masks_out["PTV_Eval"].array, ptv & ~masks_in["ThecalSac"].array)
    assert np.array_equal(
        masks_out["SpinalCord_PRV02"].array, expand(masks_in["SpinalCord"], Margins.isotropic(3)).array
    )
    assert "R 1, L 2, A 3, P 4, S 5, I 6 mm" in tags["PTV"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--level", "S2"], "missing segment: SacralCanal, SacralForamina"),
        (["--level", "T8", "--role", "SpinalCord=Nope"], "there is no segment named Nope"),
        (["--level", "T13"], "not one of C1-C7"),
        (["--level", "T8", "--prv-margin-mm", "-2"], "must be a number of mm from 0 to 50"),
        (["--level", "T8", "--ptv-margin-mm", "2,5"], "give 1, 3 (LR,AP,SI) or 6"),
        (["--level", "T8", "--ptv-margin-mm", "2,2,-5"], "must be a finite number of mm >= 0"),
    ],
)
def test_bad_input_is_named_and_nothing_written(case_file, tmp_path, args, message):
    before = digest(case_file)
    out = tmp_path / "bad.seg.nrrd"
    proc = run("volumes", "--segmentation", case_file, "--out", out, *args)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert not out.exists() and digest(case_file) == before


def test_missing_role_lists_the_segments_found(case_file, tmp_path):
    import slicer

    from SIBSpineSBRTLib.mrml import storage

    _, _, _, ctx = read(case_file)
    node = ctx.scene.GetFirstNodeByClass("vtkMRMLSegmentationNode")
    node.GetSegmentation().RemoveSegment(node.GetSegmentation().GetSegmentIdBySegmentName("SpinalCord"))
    nocord = storage.save_segmentation(ctx.scene, node, tmp_path / "nocord.seg.nrrd")
    proc = run("volumes", "--segmentation", nocord, "--level", "T8", "--out", tmp_path / "x.seg.nrrd")
    assert proc.returncode == 2
    assert "No segment for SpinalCord" in proc.stderr
    assert "Segments found: GTV, CTV, ThecalSac, SpinalCanal, Esophagus" in proc.stderr
    # an empty CTV is named too
    ctv = node.GetSegmentation().GetSegmentIdBySegmentName("CTV")
    slicer.vtkSlicerSegmentationsModuleLogic.ClearSegment(node, ctv)
    empty = storage.save_segmentation(ctx.scene, node, tmp_path / "emptyctv.seg.nrrd")
    proc = run(
        "volumes",
        "--segmentation",
        empty,
        "--level",
        "T8",
        "--out",
        tmp_path / "y.seg.nrrd",
        "--role",
        "SpinalCord=ThecalSac",
    )
    assert proc.returncode == 2 and "CTV segment is empty" in proc.stderr, proc.stderr


def test_segmentation_without_geometry_is_read_on_its_own_grid(tmp_path):
    import slicer

    from SIBSpineSBRTLib.geometry.grid import ImageGeometry
    from SIBSpineSBRTLib.geometry.masks import Mask
    from SIBSpineSBRTLib.mrml import segmentations as segs
    from SIBSpineSBRTLib.mrml import storage
    from SIBSpineSBRTLib.mrml.scene import new_scene

    ctx = new_scene()
    node = slicer.vtkMRMLSegmentationNode()
    ctx.scene.AddNode(node)
    g = ImageGeometry((6, 6, 6), (0, 0, 0), (1, 1, 1))
    segs.add_source_segment(node, Mask(np.ones(g.shape, bool), g, "CTV"), "CTV", (1, 0, 0))
    path = storage.save_segmentation(ctx.scene, node, tmp_path / "nogeom.seg.nrrd")
    proc = run("volumes", "--segmentation", path, "--level", "T8", "--out", tmp_path / "z.seg.nrrd")
    assert "no reference geometry: the segments are read on the file's own grid" in proc.stderr, proc.stderr
    assert proc.returncode == 2 and "Planning volumes not built" in proc.stderr, proc.stderr  # a CTV alone
    assert not (tmp_path / "z.seg.nrrd").exists()
