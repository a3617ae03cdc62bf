"""Inputs are never touched, outputs are all-or-nothing, every failure is exit 2 with a message (CLI)."""

import errno
import hashlib
import json
import shutil

import pytest

from SIBSpineSBRTLib.frontends.cli import main

pytestmark = pytest.mark.mrml


def tree_hash(path):
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def partials(folder):
    return [p.name for p in folder.iterdir() if ".partial-" in p.name or ".previous-" in p.name]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("outs")
    assert main(["demo", "--export-dicom", str(root / "case"), "--out", str(root / "demo"), "--no-report"]) == 0
    return root


def test_output_over_an_input_is_refused(exported, tmp_path, capsys):
    case = tmp_path / "case"
    shutil.copytree(exported / "case", case)
    before = tree_hash(case)
    calls = [
        ["volumes", "--dicom", str(case), "--level", "T8", "--out", str(case / "RTSTRUCT.dcm")],
        ["volumes", "--dicom", str(case), "--level", "T8", "--out", str(case / "new.dcm")],
        ["review", "--dicom", str(case), "--level", "T8", "--out", str(case)],
        ["review", "--dicom", str(case), "--level", "T8", "--out", str(case / "review")],
        ["dvh", "--dose", str(case / "RTDOSE.dcm"), "--rtstruct", str(case / "RTSTRUCT.dcm")],  # reads only
    ]
    for argv in calls[:4]:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "inputs are never written" in err and "Traceback" not in err
    assert main(calls[4]) == 0
    assert tree_hash(case) == before


def test_volumes_output_equal_to_its_input_segmentation(tmp_path, capsys):
    from SIBSpineSBRTLib.mrml import segmentations as segs
    from SIBSpineSBRTLib.mrml import storage
    from SIBSpineSBRTLib.mrml.case import add_case_nodes
    from SIBSpineSBRTLib.mrml.scene import new_scene
    from SIBSpineSBRTLib.review.demo import build_teaching_case

    ctx = new_scene()
    nodes = add_case_nodes(ctx.scene, build_teaching_case("thoracic", "pass"))
    path = tmp_path / "case.seg.nrrd"
    storage.save_segmentation(ctx.scene, nodes.segmentation, path)
    before = tree_hash(path)
    assert main(["volumes", "--segmentation", str(path), "--level", "T8", "--out", str(path)]) == 2
    assert "is one of the inputs" in capsys.readouterr().err
    assert tree_hash(path) == before
    assert len(segs.segment_names(nodes.segmentation)) > 0


def test_failed_rerun_leaves_the_earlier_outputs_as_they_were(exported, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    assert main(["review", "--dicom", str(exported / "case"), "--level", "T8", "--out", str(out)]) == 0
    before = tree_hash(out)
    assert json.loads((out / "metrics.json").read_text())["input_files"]
    capsys.readouterr()

    def broken(*a, **k):
        raise RuntimeError("the PDF writer died")

    monkeypatch.setattr("SIBSpineSBRTLib.report.pdf_report.write_pdf", broken)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert main(["review", "--dicom", str(exported / "case"), "--level", "T8", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert "internal error: RuntimeError: the PDF writer died" in captured.err and "please report" in captured.err
    assert "Verdict" not in captured.out  # nothing says the verdict before its files exist
    logs = list((tmp_path / "cache" / "sibspine-sbrt" / "logs").glob("*.log"))
    assert logs and "the PDF writer died" in logs[0].read_text()
    assert tree_hash(out) == before and partials(tmp_path) == []


def test_full_disk_while_writing_is_exit_2_and_nothing_changes(exported, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x" / "report.pdf"))

    monkeypatch.setattr("SIBSpineSBRTLib.report.pdf_report.write_pdf", full)
    assert main(["review", "--dicom", str(exported / "case"), "--level", "T8", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"] and partials(tmp_path) == []


def test_out_that_is_a_file_is_refused_before_any_work(exported, tmp_path, capsys):
    f = tmp_path / "taken"
    f.write_text("x")
    assert main(["review", "--dicom", str(exported / "case"), "--level", "T8", "--out", str(f)]) == 2
    captured = capsys.readouterr()
    assert "is an existing file" in captured.err and "Verdict" not in captured.out
    assert f.read_text() == "x"
