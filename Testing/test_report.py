"""The HTML report: every Table-1 row with its value and status, and images that show real content."""

import base64
import io
import re
from types import SimpleNamespace

import numpy as np
import pytest

from SIBSpineSBRTLib.dose.grid import DoseGrid
from SIBSpineSBRTLib.geometry.masks import Mask
from SIBSpineSBRTLib.report.html_report import ImageInput, make_images
from SIBSpineSBRTLib.report.outputs import write_report_file
from SIBSpineSBRTLib.report.status_style import STATUS_LABEL
from SIBSpineSBRTLib.review.pipeline import CaseInput, review_case


@pytest.fixture(scope="module")
def report(tmp_path_factory, demo_case, protocol):
    c = demo_case
    masks = {n: Mask(m, c.ct_geometry, n) for n, m in c.segments.items()}
    result = review_case(CaseInput(c.name, c.level, masks, DoseGrid(c.dose_gy, c.dose_geometry)), protocol)
    mr = ImageInput(c.ct.astype(float), c.ct_geometry)  # stands in for an MR: the fusion image is exercised
    images = make_images(result, ImageInput(c.ct, c.ct_geometry), mr)
    path = write_report_file(result, tmp_path_factory.mktemp("report") / "report.html", images=images)
    return result, SimpleNamespace(path=path, images=images)


def pixels(png):
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def test_every_table_row_with_value_and_status(report):
    result, rep = report
    text = rep.path.read_text(encoding="utf-8")
    for r in result.rows:
        row = re.search(rf"<tr><td>{re.escape(r.structure)}</td><td>{re.escape(r.metric)}</td>(.*?)</tr>", text, re.S)
        assert row, (r.structure, r.metric)
        assert f"{r.value:.2f} Gy" in row.group(1)
        assert f'class="status {r.status}">{STATUS_LABEL[r.status]}<' in row.group(1)
    assert f"Verdict: {result.verdict.upper()}" in text
    for name in ("PTV", "PTV_Eval", "SpinalCord_PRV02"):
        assert name in text and "exact margin" in text
    assert "SIBSpineSBRT" in text and "Patient" not in text  # no patient field unless asked


def test_images_show_content(report):
    _, rep = report
    embedded = re.findall(r'src="data:image/png;base64,([^"]+)"', rep.path.read_text(encoding="utf-8"))
    assert len(embedded) == 4  # DVH, axial dose, axial fusion, sagittal dose
    for key in ("dvh", "axial_dose", "axial_fusion", "sagittal_dose"):
        px = pixels(rep.images[key])
        assert px.std() > 20 and len(np.unique(px.reshape(-1, 3), axis=0)) > 300, key
        assert base64.b64encode(rep.images[key]).decode() in embedded
    # The slices are centred on the GTV, which lies in the vertebral body right of the midline (+x).
    # Radiological display: the cord (midline, posterior) must appear below and to the right of centre.
    axial = pixels(rep.images["axial_dose"])
    yellow = (axial[..., 0] > 200) & (axial[..., 1] > 200) & (axial[..., 2] < 60)  # cord outline (1, 1, 0)
    assert yellow.sum() > 30
    rows, cols = np.nonzero(yellow)
    assert rows.mean() > axial.shape[0] / 2 + 40 and cols.mean() > axial.shape[1] / 2 + 5


def test_patient_label_only_when_asked(report, tmp_path):
    result, rep = report
    from SIBSpineSBRTLib.report.html_report import build_report

    assert "Doe^Jane" in build_report(result, rep.images, patient_label="Doe^Jane")
    assert "Doe^Jane" not in rep.path.read_text(encoding="utf-8")


def test_image_shown_through_a_transform_lands_on_the_ct(demo_case):
    """An image whose grid is the CT's shifted by t, shown through the CT->image transform (+t), must
    reproduce the CT on any plane."""
    from SIBSpineSBRTLib.geometry.grid import ImageGeometry
    from SIBSpineSBRTLib.report.slices import plane_through, sample_image

    g = demo_case.ct_geometry
    t = np.array([3.0, -2.0, 1.5])
    shifted = ImageGeometry(g.shape, tuple(np.asarray(g.origin) + t), g.spacing, g.directions)
    to_image = np.eye(4)
    to_image[:3, 3] = t
    for orientation in ("axial", "sagittal"):
        plane = plane_through((5.0, 0.0, 2.0), orientation, 40, 30)
        a = sample_image(demo_case.ct, g, plane)
        b = sample_image(demo_case.ct, shifted, plane, to_image)
        assert np.allclose(a, b, equal_nan=True)


def test_csv_has_one_row_per_constraint(report, tmp_path):
    import csv

    from SIBSpineSBRTLib.report.metrics_csv import write_metrics_csv

    result, _ = report
    rows = list(csv.DictReader(write_metrics_csv(result, tmp_path / "m.csv").open()))
    assert [(r["structure"], r["metric"], r["status"]) for r in rows] == [
        (r.structure, r.metric, r.status) for r in result.rows
    ]
    assert float(rows[4]["value"]) == pytest.approx(result.rows[4].value, abs=1e-4)
    assert rows[4]["alpha_beta_gy"] == "6.0" and float(rows[4]["eqd2_gy"]) > float(rows[4]["value"])


# -- the PDF form ---------------------------------------------------------------------------------------


def pdf_text(data):
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    return reader, "\n".join(page.extract_text() for page in reader.pages)


def test_pdf_has_every_row_the_verdict_and_the_images(report):
    from PIL import Image

    from SIBSpineSBRTLib.report.content import limit_rows
    from SIBSpineSBRTLib.report.pdf_report import build_pdf

    result, rep = report
    data = build_pdf(result, rep.images)
    assert data.startswith(b"%PDF-")
    reader, text = pdf_text(data)
    flat = " ".join(text.split())
    assert f"Verdict: {result.verdict.upper()}" in flat and "Page 1 of" in flat
    for r, shown in zip(result.rows, limit_rows(result)):  # each row in order, its status in its own cell
        cells = (r.structure, r.metric, f"{r.value:.2f} Gy", shown.eqd2, shown.optimal, shown.mandatory)
        assert " ".join(cells) + f" {STATUS_LABEL[r.status]} " in flat, cells
    for name in ("PTV", "PTV_Eval", "SpinalCord_PRV02"):
        assert f"{name} = " in flat
    # the four images, embedded at full resolution
    embedded = sorted(im.image.size for page in reader.pages for im in page.images)
    assert embedded == sorted(Image.open(io.BytesIO(png)).size for png in rep.images.values())


def test_pdf_patient_label_only_when_asked(report):
    from SIBSpineSBRTLib.report.pdf_report import build_pdf

    result, rep = report
    reader, text = pdf_text(build_pdf(result, rep.images))
    assert "Patient" not in text and not reader.metadata.get("/Author")
    reader, text = pdf_text(build_pdf(result, rep.images, patient_label="Doe^Jane"))
    assert "Doe^Jane" in text and reader.metadata["/Author"] == "Doe^Jane"


def test_report_file_kind_follows_the_suffix(report, tmp_path):
    from SIBSpineSBRTLib.report.outputs import write_report_file

    result, rep = report
    pdf = write_report_file(result, tmp_path / "r.PDF", images=rep.images)
    html = write_report_file(result, tmp_path / "sub" / "r.html", images=rep.images)
    assert pdf.read_bytes().startswith(b"%PDF-")
    assert html.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    with pytest.raises(ValueError, match=r"\.pdf or \.html.*'report'"):
        write_report_file(result, tmp_path / "report", images=rep.images)
    assert not (tmp_path / "report").exists()


def test_pdf_without_fpdf2_says_how_to_install_it(report, monkeypatch):
    import sys

    from SIBSpineSBRTLib.report.pdf_report import PdfReportError, build_pdf

    result, rep = report
    monkeypatch.setitem(sys.modules, "fpdf", None)  # import fpdf now raises ImportError
    with pytest.raises(PdfReportError, match=r"fpdf2.*pip_install\('fpdf2==2\.8\.4'\)"):
        build_pdf(result, rep.images)


def test_reports_without_their_packages_fail_clearly_after_the_metrics(report, tmp_path, monkeypatch):
    from SIBSpineSBRTLib.report import outputs

    result, _ = report
    monkeypatch.setattr(outputs, "missing_packages", lambda action: ["fpdf2==2.8.4"])
    with pytest.raises(outputs.ReportDependencyError, match=r"fpdf2==2\.8\.4.*--no-report"):
        outputs.write_review_outputs(result, tmp_path)
    assert (tmp_path / "metrics.json").is_file() and not (tmp_path / "report.html").exists()
    assert set(outputs.write_review_outputs(result, tmp_path / "b", report=False)) == {"metrics", "csv"}
