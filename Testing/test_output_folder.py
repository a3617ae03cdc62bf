"""Outputs all-or-nothing and never over an input (report/output_folder.py)."""

import errno
import os

import pytest

from SIBSpineSBRTLib.report import output_folder as of
from SIBSpineSBRTLib.report.output_folder import OutputError, OutputFolder, input_hashes


def snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(parent):
    return [p.name for p in parent.iterdir() if ".partial-" in p.name or ".previous-" in p.name]


@pytest.fixture
def previous(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "metrics.json").write_text('{"verdict": "pass"}')
    (out / "report.pdf").write_bytes(b"old report")
    (out / "notes.txt").write_text("the user's own file")
    return out


def test_success_publishes_every_file_metrics_last(previous):
    with OutputFolder(previous) as stage:
        (stage.path / "metrics.json").write_text('{"verdict": "fail"}')
        (stage.path / "report.pdf").write_bytes(b"new report")
        (stage.path / "sub").mkdir()
        (stage.path / "sub" / "metrics.json").write_text("{}")
    assert snapshot(previous) == {
        "metrics.json": b'{"verdict": "fail"}',
        "notes.txt": b"the user's own file",
        "report.pdf": b"new report",
        "sub/metrics.json": b"{}",
    }
    assert stage.published[-1] == previous / "metrics.json"
    assert leftovers(previous.parent) == []


def test_failure_leaves_the_folder_as_it_was(previous):
    before = snapshot(previous)
    with pytest.raises(RuntimeError), OutputFolder(previous) as stage:
        (stage.path / "report.pdf").write_bytes(b"half a rep")
        raise RuntimeError("the PDF writer died")
    assert snapshot(previous) == before and leftovers(previous.parent) == []


def test_full_disk_while_moving_rolls_back(previous, monkeypatch):
    before = snapshot(previous)
    real = os.replace
    calls = {"n": 0}

    def flaky(src, dst):
        calls["n"] += 1
        if calls["n"] == 4:  # after the first file was swapped in
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(of.os, "replace", flaky)
    with pytest.raises(OutputError, match="could not be moved"), OutputFolder(previous) as stage:
        for name in ("a.csv", "report.pdf", "metrics.json"):
            (stage.path / name).write_text("new")
    monkeypatch.setattr(of.os, "replace", real)
    assert snapshot(previous) == before and leftovers(previous.parent) == []


def test_outputs_never_go_over_or_into_an_input(tmp_path):
    seg = tmp_path / "case.seg.nrrd"
    seg.write_bytes(b"NRRD0004")
    case = tmp_path / "dicom"
    case.mkdir()
    (case / "RTSTRUCT.dcm").write_bytes(b"dicom")
    with pytest.raises(OutputError, match="is one of the inputs"):
        of.check_not_an_input(seg, [seg])
    with pytest.raises(OutputError, match="inside the input folder"):
        of.check_not_an_input(case / "RTSTRUCT.dcm", [case])
    with pytest.raises(OutputError, match="inside the input folder"):
        OutputFolder(case / "review", [case])
    with pytest.raises(OutputError, match="is one of the inputs"):
        OutputFolder(case, [case])
    of.check_not_an_input(tmp_path / "elsewhere", [seg, case])  # fine


def test_existing_file_or_uncreatable_folder_is_refused(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(OutputError, match="existing file"):
        OutputFolder(f)
    with pytest.raises(OutputError, match="cannot be created"):
        OutputFolder(f / "sub" / "out")  # a folder cannot be made under a file


def test_input_hashes_cover_every_file(tmp_path):
    import hashlib

    case = tmp_path / "case"
    (case / "CT").mkdir(parents=True)
    (case / "CT" / "1.dcm").write_bytes(b"one")
    single = tmp_path / "dose.nrrd"
    single.write_bytes(b"dose")
    hashes = input_hashes([case, single, None])
    assert hashes == {
        str(case / "CT" / "1.dcm"): hashlib.sha256(b"one").hexdigest(),
        str(single): hashlib.sha256(b"dose").hexdigest(),
    }
