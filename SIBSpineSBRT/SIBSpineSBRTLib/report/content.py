"""What the review report says, in one place for its HTML and PDF forms: the header, the limits table, the
status key, the image captions, the planning volumes and the footer. Plain text (Unicode); each form
escapes and lays it out. No patient name or ID appears unless ``patient_label`` is given."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from .. import __version__
from ..dose.radiobiology import metric_radiobiology
from ..review.pipeline import ReviewResult
from .status_style import STATUS_LABEL, STATUS_MEANING

DASH = "\u2013"
TITLE = "SIB spine SBRT plan review"
METRIC_NOTE = "Dx% and Dxcc: the minimum dose received by the hottest x of the structure."
DISCLAIMER = (
    "For review by a qualified medical physicist; not a substitute for the treatment planning system's own checks."
)
LIMIT_COLUMNS = (
    "Structure",
    "Metric",
    "Value",
    "EQD2",
    "Optimal",
    "Mandatory",
    "Status",
    "SlicerRT (diff)",
    "Note and source",
)
CONTOURED = ("GTV", "CTV", "PTV_Eval", "SpinalCord", "SpinalCord_PRV02", "ThecalSac")  # outlined on the slices


@dataclass(frozen=True)
class LimitRow:
    structure: str
    metric: str
    value: str
    eqd2: str
    optimal: str
    mandatory: str
    status: str  # the evaluate status code, for styling
    status_label: str
    crosscheck: str
    crosscheck_flagged: bool
    note: str
    source: str


def header_rows(result: ReviewResult, patient_label: Optional[str] = None) -> List[Tuple[str, str]]:
    p = result.protocol
    rows = [("Patient", patient_label)] if patient_label else []
    return rows + [
        ("Case", result.case),
        ("Level", result.level),
        ("Protocol", p.name),
        (
            "Prescription",
            f"{p.prescription_gy:g} Gy in {p.fractions} fractions to {p.prescription_structure} "
            f"{p.prescription_metric}",
        ),
    ]


def verdict_text(result: ReviewResult) -> str:
    return f"Verdict: {result.verdict.upper()}"


def limit_rows(result: ReviewResult) -> List[LimitRow]:
    p = result.protocol
    rows = []
    for r in result.rows:
        role = p.structures.get(r.structure)
        rb = metric_radiobiology(r.metric, r.value, p.fractions, role.alpha_beta_gy if role else None)
        check, flagged = DASH, False
        if r.crosscheck is not None:
            check = f"{r.crosscheck.value:.2f} ({r.crosscheck.difference:+.2f})"
            flagged = bool(r.crosscheck.flagged)
        rows.append(
            LimitRow(
                structure=r.structure,
                metric=r.metric,
                value=DASH if r.value is None else f"{r.value:.2f} {r.unit}",
                eqd2=DASH if rb is None else f"{rb['eqd2_gy']:.1f} Gy (\u03b1/\u03b2 {rb['alpha_beta_gy']:g})",
                optimal=r.optimal_text or "-",
                mandatory=r.mandatory_text or "-",
                status=r.status,
                status_label=STATUS_LABEL[r.status],
                crosscheck=check,
                crosscheck_flagged=flagged,
                note=r.message or r.constraint.note,
                source=r.constraint.source + ("" if r.constraint.confirmed else " \u2014 default, confirm locally"),
            )
        )
    return rows


def status_key() -> List[Tuple[str, str]]:
    """(label, meaning) of every status, in the order of the evaluate module."""
    return [(STATUS_LABEL[s], meaning) for s, meaning in STATUS_MEANING.items()]


def image_captions(result: ReviewResult) -> Dict[str, str]:
    rx = result.protocol.prescription_gy
    wash = f"dose colour-wash from {0.5 * rx:g} Gy, isodose lines {rx:g} Gy (white) and {1.4 * rx:g} Gy (magenta)"
    return {
        "axial_dose": f"Axial CT through the target centre: {wash}",
        "axial_fusion": "Axial MR over the CT (50%); how the MR was placed is under Messages",
        "sagittal_dose": f"Sagittal CT through the target centre: {wash}",
    }


def legend(result: ReviewResult) -> List[Tuple[str, Tuple[float, float, float]]]:
    """(name, RGB 0-1) of the structures outlined on the slices, in the protocol's colours."""
    structures = result.protocol.structures
    return [(n, tuple(structures[n].color)) for n in CONTOURED if n in structures]


def volume_rows(result: ReviewResult) -> List[Tuple[str, str, str]]:
    """(name, size, recipe) of each planning volume built."""
    return [(n, f"{v.mask.volume_cc:.2f} cc", v.recipe) for n, v in sorted(result.volumes.items())]


def volume_problems(result: ReviewResult) -> List[str]:
    return [f"{n} not built: {msg}" for n, msg in result.volume_problems.items()]


def footer_text(result: ReviewResult, when: _dt.datetime) -> str:
    return f"SIBSpineSBRT {__version__} \u00b7 report made {when.strftime('%Y-%m-%d %H:%M')}"
