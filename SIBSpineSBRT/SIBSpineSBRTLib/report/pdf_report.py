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
ADVISORY_FILL = (228, 232, 236)  # the advisory table's lighter, greyed headings
ADVISORY_TEXT = (90, 98, 106)
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

    def heading(text: str, colour=(29, 36, 48), rule=RULE) -> None:
        pdf.ln(3)
        pdf.set_font(FONT, "B", 12)
        pdf.set_text_color(*colour)
        pdf.cell(0, 7, text, new_x="LMARGIN", new_y="NEXT")
        pdf.set_draw_color(*rule)
        pdf.line(pdf.l_margin, pdf.get_y(), pdf.w - pdf.r_margin, pdf.get_y())
        pdf.ln(2)

    def small(text: str, size: float = 8, colour=GREY_TEXT, style: str = "") -> None:
        pdf.set_font(FONT, style, size)
        pdf.set_text_color(*colour)
        pdf.multi_cell(0, 4, text, align="L", new_x="LMARGIN", new_y="NEXT")

    def keep_room(mm: float) -> None:
        """A new page unless ``mm`` are left above the bottom margin (a heading never ends a page)."""
        if pdf.get_y() + mm > pdf.h - pdf.b_margin:
            pdf.add_page()

    def box(x: float, width: float, title: str, lines, edge, tint) -> None:
        """A tinted box framed in ``edge``: a bold title and bullet lines, from the current y."""
        pdf.set_fill_color(*tint)
        top = pdf.get_y()
        pdf.set_xy(x, top)
        pdf.set_font(FONT, "B", 9)
        pdf.set_text_color(29, 36, 48)
        pdf.multi_cell(width, 5, title, fill=True, align="L", padding=(1.5, 2.5, 0.5, 2.5), new_x="LEFT", new_y="NEXT")
        pdf.set_font(FONT, "", 9)
        for line in lines:
            pdf.multi_cell(
                width,
                4.4,
                f"\u2022 {line}",
                fill=True,
                align="L",
                padding=(0.3, 2.5, 0.3, 4),
                new_x="LEFT",
                new_y="NEXT",
            )
        pdf.cell(width, 1.5, "", fill=True, new_x="LEFT", new_y="NEXT")
        pdf.set_draw_color(*edge)
        pdf.set_line_width(0.7)
        pdf.rect(x, top, width, pdf.get_y() - top, style="D")
        pdf.set_line_width(0.2)
        pdf.set_xy(pdf.l_margin, pdf.get_y() + 3)

    # header, verdict and what stands beside it
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
    verdict_w = pdf.get_string_width(verdict) + 12
    top = pdf.get_y()
    pdf.cell(verdict_w, 10, verdict, fill=True, align="C", new_x="LMARGIN", new_y="NEXT")
    if result.non_protocol:
        x = pdf.l_margin + verdict_w + 4
        width = pdf.w - pdf.r_margin - x
        pdf.set_xy(x, top)
        pdf.set_fill_color(*_rgb(content.NON_PROTOCOL_HEX))
        pdf.set_font(FONT, "B", 14)
        pdf.cell(width, 10, f"\u26a0 {content.NON_PROTOCOL}", fill=True, align="C", new_x="LEFT", new_y="NEXT")
        box(
            x,
            width,
            f"The review departs from protocol {result.protocol.id}; it is not a protocol review:",
            result.deviations,
            _rgb(content.NON_PROTOCOL_HEX),
            _rgb(content.NON_PROTOCOL_TINT),
        )
    else:
        pdf.ln(2)
    if result.problems:
        box(
            pdf.l_margin,
            pdf.w - pdf.l_margin - pdf.r_margin,
            content.problems_heading(result.verdict),
            result.problems,
            _rgb(content.PROBLEM_HEX),
            _rgb(content.PROBLEM_TINT),
        )

    plain = FontFace(fill_color=(255, 255, 255))  # explicit: a styled cell's fill would carry over otherwise
    advisory_text = FontFace(color=ADVISORY_TEXT, fill_color=(255, 255, 255))

    def table(widths, line_height, headings=None):
        return pdf.table(
            col_widths=widths,
            width=sum(widths),
            text_align="LEFT",
            line_height=line_height,
            headings_style=headings or FontFace(emphasis="BOLD", fill_color=HEADING_FILL),
            padding=1,
            align="LEFT",
        )

    def limits_table(rows, advisory: bool = False) -> None:
        pdf.set_text_color(29, 36, 48)
        pdf.set_draw_color(*RULE)
        pdf.set_font(FONT, "", 7.5)
        cell_style = advisory_text if advisory else plain
        headings = FontFace(
            emphasis="BOLD",
            color=ADVISORY_TEXT if advisory else None,
            fill_color=(ADVISORY_FILL if advisory else HEADING_FILL),
        )
        with table(LIMIT_WIDTHS, 3.6, headings) as limits:
            limits.row(content.LIMIT_COLUMNS)
            for r in rows:
                row = limits.row()
                for text in (r.structure, r.metric, r.value, r.eqd2, r.optimal, r.mandatory):
                    row.cell(text, style=cell_style)
                fill, text = STATUS_HEX[r.status], "#000000" if r.status in DARK_ON else "#ffffff"
                if advisory:  # lighter: it never decides the verdict
                    fill, text = content.lighter(fill), content.ADVISORY_STATUS_TEXT
                row.cell(
                    r.status_label,
                    align="CENTER",
                    style=FontFace(emphasis="BOLD", color=_rgb(text), fill_color=_rgb(fill)),
                )
                row.cell(r.crosscheck + (" (flagged)" if r.crosscheck_flagged else ""), style=cell_style)
                row.cell(f"{r.note}\n{r.source}", style=cell_style)
        pdf.ln(1)

    # the protocol's limits: they decide the verdict
    heading(content.PROTOCOL_HEADING)
    small(content.PROTOCOL_NOTE, 8.5, (29, 36, 48))
    pdf.ln(1)
    limits_table(content.limit_rows(result, result.protocol_rows))

    # the local defaults to confirm: advisory, apart and greyed
    if content.has_advisory_section(result):
        grey = _rgb(content.ADVISORY_HEX)
        keep_room(60)
        heading(content.ADVISORY_HEADING, grey, grey)
        small(content.ADVISORY_NOTE, 8.5, ADVISORY_TEXT)
        pdf.ln(1)
        if result.advisory_rows:
            limits_table(content.limit_rows(result, result.advisory_rows), advisory=True)
        if content.advisory_verdict_text(result):
            small(content.advisory_verdict_text(result), 9, (29, 36, 48), "B")
        if content.not_contoured_text(result):
            small(content.not_contoured_text(result), 9, (29, 36, 48))
    if result.not_evaluated:
        keep_room(25)
        heading(content.NOT_EVALUATED_HEADING)
        small(content.not_evaluated_segments_text(result.not_evaluated), 9, (29, 36, 48))
    pdf.ln(1)
    small(content.METRIC_NOTE + " " + "; ".join(f"{label}: {meaning}" for label, meaning in content.status_key()) + ".")
    messages = content.shown_messages(result)
    if messages:
        keep_room(25)
        heading("Messages")
        for m in messages:
            small(f"\u2022 {m}", 9)

    # DVH and images on their own page
    pdf.add_page()
    heading("Dose-volume histogram")
    if "dvh" in images:
        pdf.image(io.BytesIO(images["dvh"]), w=240, alt_text="DVH with protocol limits")
    else:
        small("No dose: no DVH.", 9)
    trial = content.trial_rows(result)
    if trial:
        keep_room(90)
        heading(content.TRIAL_HEADING)
        if "trial" in images:
            pdf.image(io.BytesIO(images["trial"]), w=170, alt_text="The trial's ranges and this plan")
        pdf.set_font(FONT, "", 8)
        pdf.set_text_color(29, 36, 48)
        with table((40, 28, 70, 45), 4.5) as t:
            t.row(("Result", "This plan", f"Trial ({trial[0].source})", "Where it falls"))
            for r in trial:
                t.row((r.label, r.plan, r.trial, r.position), style=plain)
        for sentence in content.reference_sentences(result):
            small(f"\u2022 {sentence}", 8.5)
    small(content.RADIOBIOLOGY_NOTE, 8)
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
        for start in range(0, len(figures), 3):  # three to a row, a page each two rows
            if start and start % 6 == 0:
                pdf.add_page()
            keep_room(width + 16)
            top = pdf.get_y()
            for n, (key, caption) in enumerate(figures[start : start + 3]):
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
    keep_room(60)
    heading(content.SIGNOFF_HEADING)
    pdf.set_font(FONT, "", 9)
    pdf.set_text_color(29, 36, 48)
    with table((70, 190), 7) as sign:
        sign.row(("", "Signed on the command line" if result.signoff else "To be completed by the reviewing physicist"))
        for label, value in content.signoff_rows(result):
            sign.row((label, value), style=plain)
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
