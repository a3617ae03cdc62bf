"""The review report as a PDF (A4 landscape) for filing: the same content as the HTML report (``content``),
laid out with fpdf2 and the DejaVu Sans font that ships with matplotlib. fpdf2 and matplotlib are imported
lazily; inside Slicer the module installs them on first use."""

from __future__ import annotations

import datetime as _dt
import io
import os
from pathlib import Path
from typing import Dict, Optional

from ..review.pipeline import ReviewResult
from . import content
from .status_style import STATUS_HEX, VERDICT_HEX

FONT = "DejaVu"
# mm; the nine columns of the limits table on the 277 mm between the margins
LIMIT_WIDTHS = (27, 19, 20, 29, 30, 30, 24, 22, 76)
GREY_TEXT = (70, 70, 70)
RULE = (200, 204, 214)
HEADING_FILL = (238, 241, 246)
DARK_ON = {"acceptable", "not_applicable"}  # light fills that need dark text


class PdfReportError(RuntimeError):
    pass


def _rgb(hex_colour: str):
    return tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))


def _font_files() -> Dict[str, str]:
    import matplotlib

    folder = os.path.join(matplotlib.get_data_path(), "fonts", "ttf")
    return {"": os.path.join(folder, "DejaVuSans.ttf"), "B": os.path.join(folder, "DejaVuSans-Bold.ttf")}


def build_pdf(
    result: ReviewResult,
    images: Dict[str, bytes],
    patient_label: Optional[str] = None,
    when: Optional[_dt.datetime] = None,
) -> bytes:
    """The PDF's bytes. ``images`` are the report's PNGs by name (``html_report.make_images``)."""
    try:
        from fpdf import FPDF
        from fpdf.fonts import FontFace
    except ImportError as exc:
        raise PdfReportError(
            "The PDF report needs the fpdf2 package. In Slicer's Python console run "
            "slicer.util.pip_install('fpdf2==2.8.4'); elsewhere pip install fpdf2==2.8.4. The HTML report does not "
            "need it."
        ) from exc

    when = when or _dt.datetime.now()
    footer = content.footer_text(result, when)

    class _Pdf(FPDF):
        def footer(self) -> None:
            self.set_y(-11)
            self.set_font(FONT, "", 7)
            self.set_text_color(*GREY_TEXT)
            self.cell(0, 4, footer)
            self.cell(0, 4, f"Page {self.page_no()} of {{nb}}", align="R", new_x="LMARGIN", new_y="NEXT")
            self.cell(0, 4, content.DISCLAIMER)

    pdf = _Pdf(orientation="L", unit="mm", format="A4")
    for style, path in _font_files().items():
        pdf.add_font(FONT, style, path)
    pdf.set_margins(10, 10, 10)
    pdf.set_auto_page_break(True, margin=14)
    pdf.set_title(f"{content.TITLE}: {result.case}")
    pdf.set_author(patient_label or "")
    pdf.set_creator("SIBSpineSBRT")
    pdf.set_creation_date(when.astimezone(_dt.timezone.utc) if when.tzinfo else when)
    pdf.add_page()

    def heading(text: str) -> None:
        pdf.ln(3)
        pdf.set_font(FONT, "B", 12)
        pdf.set_text_color(29, 36, 48)
        pdf.cell(0, 7, text, new_x="LMARGIN", new_y="NEXT")
        pdf.set_draw_color(*RULE)
        pdf.line(pdf.l_margin, pdf.get_y(), pdf.w - pdf.r_margin, pdf.get_y())
        pdf.ln(2)

    def small(text: str, size: float = 8) -> None:
        pdf.set_font(FONT, "", size)
        pdf.set_text_color(*GREY_TEXT)
        pdf.multi_cell(0, 4, text, new_x="LMARGIN", new_y="NEXT")

    # header and verdict
    pdf.set_font(FONT, "B", 16)
    pdf.set_text_color(29, 36, 48)
    pdf.cell(0, 9, content.TITLE, new_x="LMARGIN", new_y="NEXT")
    for label, value in content.header_rows(result, patient_label):
        pdf.set_font(FONT, "B", 9)
        pdf.cell(28, 5, label)
        pdf.set_font(FONT, "", 9)
        pdf.cell(0, 5, value, new_x="LMARGIN", new_y="NEXT")
    small(result.protocol.citation)
    pdf.ln(2)
    pdf.set_font(FONT, "B", 14)
    pdf.set_fill_color(*_rgb(VERDICT_HEX.get(result.verdict, "#8c8c8c")))
    pdf.set_text_color(255, 255, 255)
    verdict = content.verdict_text(result)
    pdf.cell(pdf.get_string_width(verdict) + 12, 10, verdict, fill=True, align="C", new_x="LMARGIN", new_y="NEXT")

    # the limits table
    heading("Protocol limits")
    pdf.set_text_color(29, 36, 48)
    pdf.set_draw_color(*RULE)
    pdf.set_font(FONT, "", 7.5)
    plain = FontFace(fill_color=(255, 255, 255))  # explicit: a styled cell's fill would carry over otherwise

    def table(widths, line_height):
        return pdf.table(
            col_widths=widths,
            width=sum(widths),
            text_align="LEFT",
            line_height=line_height,
            headings_style=FontFace(emphasis="BOLD", fill_color=HEADING_FILL),
            padding=1,
            align="LEFT",
        )

    with table(LIMIT_WIDTHS, 3.6) as limits:
        limits.row(content.LIMIT_COLUMNS)
        for r in content.limit_rows(result):
            row = limits.row()
            for text in (r.structure, r.metric, r.value, r.eqd2, r.optimal, r.mandatory):
                row.cell(text, style=plain)
            status_text = (0, 0, 0) if r.status in DARK_ON else (255, 255, 255)
            row.cell(
                r.status_label,
                align="CENTER",
                style=FontFace(emphasis="BOLD", color=status_text, fill_color=_rgb(STATUS_HEX[r.status])),
            )
            row.cell(r.crosscheck + (" (flagged)" if r.crosscheck_flagged else ""), style=plain)
            row.cell(f"{r.note}\n{r.source}", style=plain)
    pdf.ln(1)
    small(content.METRIC_NOTE + " " + "; ".join(f"{label}: {meaning}" for label, meaning in content.status_key()) + ".")
    if result.messages:
        heading("Messages")
        for m in result.messages:
            small(f"\u2022 {m}", 9)

    # DVH and images on their own page
    pdf.add_page()
    heading("Dose-volume histogram")
    if "dvh" in images:
        pdf.image(io.BytesIO(images["dvh"]), w=240, alt_text="DVH with protocol limits")
    else:
        small("No dose: no DVH.", 9)
    figures = [(k, c) for k, c in content.image_captions(result).items() if k in images]
    if figures:
        pdf.add_page()
        heading("Images")
        pdf.set_font(FONT, "", 8)
        pdf.set_text_color(29, 36, 48)
        for name, rgb in content.legend(result):
            pdf.set_fill_color(*(int(round(255 * c)) for c in rgb))
            pdf.rect(pdf.get_x(), pdf.get_y() + 0.8, 3.5, 3.5, style="F")
            pdf.set_x(pdf.get_x() + 4.5)
            pdf.cell(pdf.get_string_width(name) + 6, 5, name)
        pdf.ln(7)
        width, gap = 88, 6
        top = pdf.get_y()
        for n, (key, caption) in enumerate(figures):
            x = pdf.l_margin + n * (width + gap)
            info = pdf.image(io.BytesIO(images[key]), x=x, y=top, w=width, alt_text=caption)
            pdf.set_xy(x, top + info.rendered_height + 1)
            pdf.set_font(FONT, "", 7.5)
            pdf.set_text_color(*GREY_TEXT)
            pdf.multi_cell(width, 3.5, caption)
        pdf.set_y(top + width + 14)
    heading("Planning volumes")
    volumes = content.volume_rows(result)
    if volumes:
        pdf.set_font(FONT, "", 8)
        pdf.set_text_color(29, 36, 48)
        with table((35, 22, 220), 4) as recipes:
            recipes.row(("Volume", "Size", "Recipe"))
            for row in volumes:
                recipes.row(row, style=plain)
    for problem in content.volume_problems(result):
        small(f"\u2022 {problem}", 9)
    return bytes(pdf.output())


def write_pdf(
    result: ReviewResult,
    path,
    images: Dict[str, bytes],
    patient_label: Optional[str] = None,
    when: Optional[_dt.datetime] = None,
) -> Path:
    data = build_pdf(result, images, patient_label, when)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
