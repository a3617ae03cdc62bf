"""The HTML report: every Table-1 row with its value and status, and images that show real content."""

import base64
import html
import io
import re
from types import SimpleNamespace

import numpy as np
import pytest

from SIBSpineSBRTLib.dose.grid import DoseGrid
from SIBSpineSBRTLib.geometry.masks import Mask
from SIBSpineSBRTLib.report.content import counts_text
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
    protocol_part, advisory_part = text.split("<section class=advisory-section id=advisory>")
    for r in result.rows:
        part = advisory_part if r.advisory else protocol_part  # each row in its own section
        row = re.search(rf"<tr><td>{re.escape(r.structure)}</td><td>{re.escape(r.metric)}</td>(.*?)</tr>", part, re.S)
        assert row, (r.structure, r.metric)
        assert f"<td class=num>{r.value_text}</td>" in row.group(1)  # as judged: at the row's precision
        assert f'class="status {r.status}">{STATUS_LABEL[r.status]}<' in row.group(1)
        assert f"<small>{r.constraint.source}</small>" in row.group(1)
    assert f"Verdict: {result.verdict.upper()}  ({counts_text(result.protocol_rows)})" in text
    assert "Local defaults to confirm" in advisory_part and "never decide the verdict or the exit code" in text
    assert "NON-PROTOCOL" not in text  # a protocol review
    for name in ("PTV", "PTV_Eval", "SpinalCord_PRV02"):
        assert name in text and "exact margin" in text
    assert "SIBSpineSBRT" in text and "Patient" not in text  # no patient field unless asked
    assert "30 Gy in 5 fractions (6 Gy per fraction) to PTV_Eval D90%" in text
    # every status has its colour, MET included
    assert re.search(r"td\.met \{ background: #[0-9a-f]{6}", text)


def test_images_show_content(report):
    _, rep = report
    embedded = re.findall(r'src="data:image/png;base64,([^"]+)"', rep.path.read_text(encoding="utf-8"))
    assert len(embedded) == 7  # DVH, trial ranges, axial and sagittal dose, fusion, axial and sagittal hot spot
    for key in ("dvh", "axial_dose", "axial_fusion", "sagittal_dose"):
        px = pixels(rep.images[key])
        assert px.std() > 20 and len(np.unique(px.reshape(-1, 3), axis=0)) > 300, key
        assert base64.b64encode(rep.images[key]).decode() in embedded
    # The slices are centred on the GTV, which lies in the vertebral body right of the midline (+x).
    # Radiological display: the cord (midline, posterior) must appear below and to the right of centre.
    axial = pixels(rep.images["axial_dose"])
    yellow = (axial[..., 0] > 200) & (axial[..., 1] > 200) & (axial[..., 2] < 60)  # cord outline (1, 1, 0)
    yellow[:, int(0.88 * axial.shape[1]) :] = False  # not the dose colour bar at the right edge
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
    counts = counts_text(result.protocol_rows)
    assert f"Verdict: {result.verdict.upper()} ({counts})" in flat and "Page 1 of" in flat
    assert "met" in counts and "optimal" in counts  # MET counted apart from OPTIMAL
    assert "30 Gy in 5 fractions (6 Gy per fraction) to PTV_Eval D90%" in flat
    # the protocol rows, then the advisory section with its own rows
    advisory_at = flat.index("Local defaults to confirm")
    assert "they never decide the verdict or the exit code" in flat
    for r, shown in zip(result.rows, limit_rows(result)):  # each row in order, its status in its own cell
        assert shown.value == r.value_text and re.fullmatch(rf"\d+\.\d{{{r.constraint.decimals}}} Gy", shown.value)
        cells = (r.structure, r.metric, r.value_text, shown.eqd2, shown.optimal, shown.mandatory)
        at = flat.index(" ".join(cells) + f" {STATUS_LABEL[r.status]} ")
        assert (at > advisory_at) == r.advisory, cells
        assert r.constraint.source in flat
    prv = next(r for r in result.rows if (r.structure, r.metric) == ("SpinalCord_PRV02", "D0.03cc"))
    assert result.verdict == "pass" and prv.status == "met"
    assert f"SpinalCord_PRV02 D0.03cc {prv.value_text} " in flat and "MET" in flat and "OPTIMAL" in flat
    if result.advisory_verdict:
        assert f"Advisory verdict: {result.advisory_verdict.upper()}" in flat
    if result.not_contoured:
        assert f"Not contoured (expected at {result.level}): {', '.join(result.not_contoured)}" in flat
    assert "NON-PROTOCOL" not in flat  # a protocol review
    # no Messages section: the fusion caption points to none
    assert ("Messages" in flat) == bool(result.messages) and "under Messages" not in flat
    for name in ("PTV", "PTV_Eval", "SpinalCord_PRV02"):
        assert f"{name} = " in flat
    # the four images, embedded at full resolution
    embedded = sorted(im.image.size for page in reader.pages for im in page.images)
    assert embedded == sorted(Image.open(io.BytesIO(png)).size for png in rep.images.values())


@pytest.fixture(scope="module")
def departing(demo_case, protocol):
    """The demo case reviewed off protocol (other margins), as a 3-fraction plan, with an extra segment."""
    from SIBSpineSBRTLib.geometry.margins import Margins

    c = demo_case
    masks = {n: Mask(m, c.ct_geometry, n) for n, m in c.segments.items()}
    masks["Couch"] = masks["GTV"].renamed("Couch")
    case = CaseInput(c.name, c.level, masks, DoseGrid(c.dose_gy, c.dose_geometry), plan_fractions=3)
    return review_case(case, protocol, ptv_margins=Margins(3, 3, 3, 3, 5, 5), prv_margin_mm=1.0)


def test_non_protocol_banner_problems_and_not_evaluated_in_both_forms(departing):
    from SIBSpineSBRTLib.report.html_report import build_report
    from SIBSpineSBRTLib.report.pdf_report import build_pdf

    result = departing
    assert result.non_protocol and result.problems and result.not_evaluated == ["Couch"]
    _, text = pdf_text(build_pdf(result, {}))
    flat = " ".join(text.split())
    page = build_report(result, {})
    # the banner stands next to the verdict, before the limits, and lists every deviation
    verdict_at = flat.index(f"Verdict: {result.verdict.upper()}")
    banner_at = flat.index("NON-PROTOCOL REVIEW")
    assert verdict_at < banner_at < flat.index("Protocol limits")
    assert "id=non-protocol" in page and page.index("id=verdict") < page.index("id=non-protocol")
    for d in result.deviations:
        assert d in flat and html.escape(d) in page
    # the problems that stop a pass, next to the verdict, said once (not again under Messages)
    for m in result.problems:
        assert flat.count(" ".join(m.split())) == 1 and flat.index(m) < flat.index("Protocol limits")
        assert html.escape(m) in page.split("<h2>Protocol limits</h2>")[0]
    assert "Not evaluated" in flat and "Couch" in flat.split("Not evaluated")[-1]
    assert "id=not-evaluated" in page


def test_mr_caption_points_to_messages_only_when_they_say_how_the_mr_was_placed(report):
    from dataclasses import replace

    from SIBSpineSBRTLib.report.content import image_captions

    result, _ = report
    assert "Messages" not in image_captions(result)["axial_fusion"]
    placed = replace(result, messages=["MR T1: registered to the CT (rigid, mutual information, around the target)."])
    assert image_captions(placed)["axial_fusion"].endswith("how the MR was placed is under Messages")


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
    assert not any(tmp_path.iterdir())  # refused before anything is written: outputs are all-or-nothing
    assert set(outputs.write_review_outputs(result, tmp_path / "b", report=False)) == {"metrics", "csv"}
