"""The review report: one self-contained HTML file (images embedded) that a physicist can file or print.

Contents: case, protocol and prescription; the verdict, with the NON-PROTOCOL REVIEW banner when the review
departs from its protocol and the review-level problems that stop a pass; the protocol limits (they decide the
verdict) and, apart and greyed, the local defaults to confirm (advisory), with statuses, EQD2 and sources; the
segments not evaluated; the DVH with the limits drawn; axial and sagittal slices (dose colour-wash and contours; fused
MR/CT when an MR is given); the planning volumes' recipes; warnings; software version and date. No
patient name or ID appears unless ``patient_label`` is given.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
from dataclasses import dataclass
from typing import Dict, Optional

import numpy as np

from ..geometry.grid import ImageGeometry
from ..review.pipeline import ReviewResult, structure_masks
from . import content, figures
from .content import CONTOURED, PROBLEM_HEX, PROBLEM_TINT
from .slices import plane_through, sample_dose, sample_image, sample_mask
from .status_style import STATUS_HEX, VERDICT_HEX


@dataclass
class ImageInput:
    array: np.ndarray
    geometry: ImageGeometry
    to_image_ras: Optional[np.ndarray] = None  # 4x4: CT RAS -> this image's RAS (for a registered MR)


def _hex(rgb) -> str:
    return "#" + "".join(f"{int(round(255 * c)):02x}" for c in rgb)


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _centre(result: ReviewResult, ct: ImageInput) -> np.ndarray:
    """Where the slices go: the GTV, else the CTV, else a planning volume, else the CT's centre (a review with
    no target still gets its images; its rows say what is missing)."""
    masks = result.inputs.masks if result.inputs else {}
    for name in ("GTV", "CTV"):
        seg = result.resolution.get(name)
        if seg and seg in masks and not masks[seg].is_empty:
            return masks[seg].centroid_ras()
    for v in result.volumes.values():
        return v.mask.centroid_ras()
    middle = (np.asarray(ct.geometry.shape[::-1], float) - 1) / 2
    return ct.geometry.ijk_to_ras_points(middle[None])[0]


def make_images(result: ReviewResult, ct: Optional[ImageInput], mr: Optional[ImageInput] = None, half_mm: float = 55.0):
    """PNG images of the report: DVH, axial CT with dose, axial MR/CT fusion (if MR), sagittal CT with dose."""
    p = result.protocol
    structures = structure_masks(result.resolution, result.inputs.masks, result.volumes)
    colors = {n: s.color for n, s in p.structures.items()}
    dose = result.inputs.dose
    images = {}
    if result.dvhs:
        images["dvh"] = figures.review_dvh_png(result)
        trial = figures.trial_bands_png(content.trial_rows(result))
        if trial:
            images["trial"] = trial
    if ct is None:
        return images
    centre = _centre(result, ct)
    rx = p.prescription_gy
    iso = [(rx, "#ffffff"), (1.4 * rx, "#ff00ff")]
    for orientation, labels in (("axial", ("R", "L", "A", "P")), ("sagittal", ("A", "P", "S", "I"))):
        plane = plane_through(centre, orientation, half_mm, half_mm)
        ct2d = sample_image(ct.array, ct.geometry, plane, ct.to_image_ras, fill=-1000)
        outlines = [
            (n, sample_mask(structures[n], plane), colors.get(n, (1, 1, 1))) for n in CONTOURED if n in structures
        ]
        d2d = sample_dose(dose, plane) if dose is not None else None
        title = ""  # the caption says what is shown
        images[f"{orientation}_dose"] = figures.slice_png(
            ct2d, plane.extent_mm, title, labels, outlines, d2d, (0.5 * rx, 1.6 * rx), iso
        )
        if orientation == "axial" and mr is not None:
            mr2d = sample_image(mr.array, mr.geometry, plane, mr.to_image_ras)
            images["axial_fusion"] = figures.slice_png(ct2d, plane.extent_mm, "", labels, outlines, overlay=mr2d)
    hot = content.hot_spot_structure(result)
    spot = _hot_spot(structures.get(hot), dose) if hot else None
    if spot is not None:
        for orientation, labels in (("axial", ("R", "L", "A", "P")), ("sagittal", ("A", "P", "S", "I"))):
            plane = plane_through(spot, orientation, half_mm, half_mm)
            ct2d = sample_image(ct.array, ct.geometry, plane, ct.to_image_ras, fill=-1000)
            outlines = [
                (n, sample_mask(structures[n], plane), colors.get(n, (1, 1, 1))) for n in CONTOURED if n in structures
            ]
            d2d = sample_dose(dose, plane)
            images[f"{orientation}_hotspot"] = figures.slice_png(
                ct2d, plane.extent_mm, "", labels, outlines, d2d, (0.5 * rx, 1.6 * rx), iso, mark_centre=True
            )
    return images


def _hot_spot(mask, dose) -> Optional[np.ndarray]:
    """RAS of the voxel of ``mask`` with the highest dose (None without a mask or a dose)."""
    if mask is None or dose is None or not hasattr(mask, "array") or mask.is_empty:
        return None
    kji = np.argwhere(mask.array)
    ras = mask.geometry.ijk_to_ras_points(kji[:, ::-1].astype(float))
    values, inside = dose.sample(ras)
    if not inside.any():
        return None
    return ras[int(np.argmax(np.where(inside, values, -np.inf)))]


def _trial_section(result: ReviewResult, images: Dict[str, bytes]) -> str:
    """The trial's reported results (median, range) with the plan's values, its reference doses and the LQ note."""
    e = html.escape
    rows = content.trial_rows(result)
    if not rows:
        return f"<p style='font-size:12px'>{e(content.RADIOBIOLOGY_NOTE)}</p>"
    body = "".join(
        f"<tr><td>{e(r.label)}</td><td class=num>{e(r.plan)}</td><td>{e(r.trial)}</td><td>{e(r.position)}</td></tr>"
        for r in rows
    )
    refs = "".join(f"<li>{e(t)}</li>" for t in content.reference_sentences(result))
    image = _img(images["trial"], "The trial's ranges and this plan") if "trial" in images else ""
    return (
        f"<h2>{e(content.TRIAL_HEADING)}</h2><div class=dvh>{image}</div>"
        f"<table><tr><th>Result</th><th>This plan</th><th>Trial ({e(rows[0].source)})</th><th>Where it falls</th></tr>"
        f"{body}</table>{'<ul>' + refs + '</ul>' if refs else ''}"
        f"<p style='font-size:12px'>{e(content.RADIOBIOLOGY_NOTE)}</p>"
    )


def _limits_table(rows, advisory: bool = False) -> str:
    e = html.escape
    body = []
    for r in rows:
        check = e(r.crosscheck) + (" &#9888;" if r.crosscheck_flagged else "")
        body.append(
            f"<tr><td>{e(r.structure)}</td><td>{e(r.metric)}</td><td class=num>{e(r.value)}</td>"
            f"<td class=num>{e(r.eqd2)}</td><td>{e(r.optimal)}</td><td>{e(r.mandatory)}</td>"
            f'<td class="status {r.status}">{e(r.status_label)}</td><td class=num>{check}</td>'
            f"<td class=note>{e(r.note)}<br><small>{e(r.source)}</small></td></tr>"
        )
    header = "".join(f"<th>{e(c)}</th>" for c in content.LIMIT_COLUMNS)
    cls = "limits advisory" if advisory else "limits"
    return f'<table class="{cls}"><tr>{header}</tr>\n{"".join(body)}</table>'


def _status_css() -> str:
    dark = {"acceptable", "not_applicable"}  # light fills that need dark text
    css = [f"td.{s} {{ background: {h}; color: {'#222' if s in dark else 'white'}; }}" for s, h in STATUS_HEX.items()]
    css += [  # advisory rows: lighter fills, they never decide the verdict
        f"table.advisory td.{s} {{ background: {content.lighter(h)}; color: {content.ADVISORY_STATUS_TEXT}; }}"
        for s, h in STATUS_HEX.items()
    ]
    return "\n".join(css)


def _verdict_block(result: ReviewResult) -> str:
    """The verdict, the NON-PROTOCOL banner with the deviations beside it, and the review-level problems."""
    e = html.escape
    out = [f"<div class=verdict-row><span class=verdict id=verdict>{e(content.verdict_text(result))}</span>"]
    if result.non_protocol:
        items = "".join(f"<li>{e(d)}</li>" for d in result.deviations)
        out.append(
            f"<div class=nonprotocol id=non-protocol><div class=np-title>&#9888; "
            f"{e(content.non_protocol_title(result.protocol.id))}</div><ul>{items}</ul></div>"
        )
    out.append("</div>")
    if result.problems:
        items = "".join(f"<li>{e(m)}</li>" for m in result.problems)
        out.append(
            f"<div class=problems id=problems><b>{e(content.problems_heading(result.verdict))}</b><ul>{items}</ul></div>"
        )
    return "".join(out)


def _advisory_section(result: ReviewResult) -> str:
    if not content.has_advisory_section(result):
        return ""
    e = html.escape
    parts = [
        f"<section class=advisory-section id=advisory><h2 class=advisory-h>{e(content.ADVISORY_HEADING)}</h2>",
        f"<p class=advisory-note>{e(content.ADVISORY_NOTE)}</p>",
    ]
    if result.advisory_rows:
        parts.append(_limits_table(content.limit_rows(result, result.advisory_rows), advisory=True))
    lines = [t for t in (content.advisory_verdict_text(result), content.not_contoured_text(result)) if t]
    parts += [f"<p class=advisory-line>{e(t)}</p>" for t in lines]
    parts.append("</section>")
    return "".join(parts)


def build_report(
    result: ReviewResult,
    images: Dict[str, bytes],
    patient_label: Optional[str] = None,
    when: Optional[_dt.datetime] = None,
) -> str:
    p = result.protocol
    when = when or _dt.datetime.now()
    e = html.escape
    verdict_color = VERDICT_HEX.get(result.verdict, "#8c8c8c")
    protocol_table = _limits_table(content.limit_rows(result, result.protocol_rows))
    key = "; ".join(f"{e(label)}: {e(meaning)}" for label, meaning in content.status_key())
    volumes = "".join(
        f"<tr><td>{e(n)}</td><td class=num>{e(size)}</td><td>{e(recipe)}</td></tr>"
        for n, size, recipe in content.volume_rows(result)
    )
    problems = "".join(f"<li>{e(m)}</li>" for m in content.volume_problems(result))
    messages = "".join(f"<li>{e(m)}</li>" for m in content.shown_messages(result))
    not_evaluated = ""
    if result.not_evaluated:
        not_evaluated = (
            f"<h2>{e(content.NOT_EVALUATED_HEADING)}</h2>"
            f"<p id=not-evaluated>{e(content.not_evaluated_segments_text(result.not_evaluated))}</p>"
        )
    figs = [
        f"<figure>{_img(images[key], caption)}<figcaption>{e(caption)}</figcaption></figure>"
        for key, caption in content.image_captions(result).items()
        if key in images
    ]
    legend = " ".join(
        f'<span class=swatch style="border-color:{_hex(rgb)}">{e(n)}</span>' for n, rgb in content.legend(result)
    )
    meta = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in content.header_rows(result, patient_label))
    dvh = _img(images["dvh"], "DVH with protocol limits") if "dvh" in images else "<p>No dose: no DVH.</p>"
    signoff = "".join(
        f"<tr><th>{e(k)}</th><td style='min-width:420px;height:26px'>{e(v)}</td></tr>"
        for k, v in content.signoff_rows(result)
    )
    np_hex, np_tint = content.NON_PROTOCOL_HEX, content.NON_PROTOCOL_TINT
    adv_hex, adv_tint = content.ADVISORY_HEX, content.ADVISORY_TINT
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>SIB spine SBRT review: {e(result.case)}</title>
<style>
body {{ font-family: "DejaVu Sans", Arial, sans-serif; margin: 24px; color: #1d2430; max-width: 1180px; }}
h1 {{ font-size: 22px; margin: 0 0 4px 0; }} h2 {{ font-size: 17px; margin: 26px 0 8px 0; border-bottom: 1px solid #ccd; }}
table {{ border-collapse: collapse; font-size: 13px; }} th, td {{ border: 1px solid #d4d8e0; padding: 4px 7px; vertical-align: top; }}
th {{ background: #eef1f6; text-align: left; }} td.num {{ text-align: right; white-space: nowrap; }}
td.note {{ font-size: 11.5px; color: #444; max-width: 330px; }}
td.status {{ font-weight: bold; color: white; text-align: center; white-space: nowrap; }}
{_status_css()}
.verdict-row {{ display: flex; align-items: flex-start; gap: 16px; margin: 12px 0; }}
.verdict {{ display: inline-block; padding: 8px 18px; color: white; font-size: 20px; font-weight: bold; border-radius: 4px; background: {verdict_color}; white-space: nowrap; }}
.nonprotocol {{ border: 3px solid {np_hex}; background: {np_tint}; border-radius: 4px; flex: 1; }}
.nonprotocol .np-title {{ background: {np_hex}; color: white; font-size: 20px; font-weight: bold; padding: 6px 12px; }}
.nonprotocol ul {{ margin: 6px 0 8px 0; font-size: 13.5px; }}
.problems {{ border: 2px solid {PROBLEM_HEX}; background: {PROBLEM_TINT}; border-radius: 4px; padding: 6px 12px; margin: 8px 0; font-size: 13.5px; }}
.problems ul {{ margin: 4px 0; }}
p.section-note {{ font-size: 12.5px; margin: 0 0 6px 0; }}
.advisory-section {{ background: {adv_tint}; padding: 2px 12px 10px 12px; margin-top: 22px; border-left: 5px solid {adv_hex}; }}
h2.advisory-h {{ color: {adv_hex}; border-bottom-color: {adv_hex}; }}
.advisory-note {{ font-size: 12.5px; color: #555; font-style: italic; margin: 0 0 6px 0; }}
table.advisory th {{ background: #e4e8ec; color: #555; }} table.advisory td {{ background: white; color: #555; }}
.advisory-line {{ font-size: 13px; margin: 6px 0 0 0; color: #333; }}
.meta td, .meta th {{ border: none; padding: 2px 12px 2px 0; }}
figure {{ display: inline-block; width: 400px; margin: 0 16px 14px 0; vertical-align: top; }} figure img {{ width: 400px; }}
figcaption {{ font-size: 12px; color: #444; }} .dvh img {{ width: 760px; }}
.swatch {{ border-left: 14px solid; padding-left: 5px; margin-right: 10px; font-size: 12px; }}
footer {{ margin-top: 28px; font-size: 11px; color: #666; }}
</style></head><body>
<h1>{e(content.TITLE)}</h1>
<table class=meta>{meta}</table>
{_verdict_block(result)}
<h2>{e(content.PROTOCOL_HEADING)}</h2>
<p class=section-note>{e(content.PROTOCOL_NOTE)}</p>
{protocol_table}
{_advisory_section(result)}
{not_evaluated}
<p style="font-size:12px">{e(content.METRIC_NOTE)} {key}.</p>
{"<h2>Messages</h2><ul>" + messages + "</ul>" if messages else ""}
<h2>Dose-volume histogram</h2><div class=dvh>{dvh}</div>
{_trial_section(result, images)}
<h2>Images</h2><p>{legend}</p>{"".join(figs) or "<p>No image was given.</p>"}
<h2>Planning volumes</h2><table><tr><th>Volume</th><th>Size</th><th>Recipe</th></tr>{volumes}</table>
{"<ul>" + problems + "</ul>" if problems else ""}
<h2>{e(content.SIGNOFF_HEADING)}</h2><table class=signoff>{signoff}</table>
<footer>{e(content.footer_text(result, when))} &middot; {e(p.citation)} &middot; {e(content.DISCLAIMER)}</footer>
</body></html>
"""
