"""What the review says, in one place for every front end: the report (HTML and PDF), the terminal table, the
Slicer panel and the web demo. The header, the verdict line, the two sections of limits (the protocol's, which
decide the verdict, and the local defaults to confirm, which never do), the NON-PROTOCOL banner, the status
key, the image captions, the planning volumes and the footer. Plain text (Unicode); each form escapes and lays
it out. No patient name or ID appears unless ``patient_label`` is given."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from .. import __version__
from ..dose.radiobiology import metric_radiobiology
from ..protocol import evaluate as ev
from ..protocol.model import Protocol
from ..review.deviations import NON_PROTOCOL
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
#: outlined on the slices: the targets, the cord and its PRV, the thecal sac, and the canal structures
#: subtracted from the PTV (so PTV_Eval can be checked by eye)
CONTOURED = (
    "GTV",
    "CTV",
    "PTV_Eval",
    "SpinalCord",
    "SpinalCord_PRV02",
    "ThecalSac",
    "SpinalCanal",
    "SacralCanal",
    "SacralForamina",
)
HOT_SPOT_STRUCTURES = ("SpinalCord_PRV02", "ThecalSac")  # the first present gets its own slices

# -- the sections ---------------------------------------------------------------------------------------------

PROTOCOL_HEADING = "Protocol limits"
PROTOCOL_RULE = "they decide the verdict"
PROTOCOL_NOTE = "The protocol's confirmed limits: they alone decide the verdict. Values are judged as shown."
ADVISORY_HEADING = "Local defaults to confirm"
ADVISORY_RULE = "advisory: they never decide the verdict or the exit code"
ADVISORY_NOTE = (
    "Advisory: these limits are unconfirmed local defaults from the literature (each row names its source), "
    "judged the same way for information. A clinic must confirm them; they never decide the verdict or the "
    "exit code."
)
NOT_EVALUATED_HEADING = "Not evaluated"
NOT_EVALUATED_RULE = "no protocol structure matches them; not judged"
PROBLEMS_INCOMPLETE = "The review is incomplete: the plan cannot pass because"
PROBLEMS_OTHER = "Review problems (each stops a pass):"

# -- how the banners look (the status and verdict colours are in status_style) --------------------------------

NON_PROTOCOL_HEX = "#e65100"  # deep amber: the NON-PROTOCOL REVIEW banner
NON_PROTOCOL_TINT = "#fff3e0"  # its deviations box
PROBLEM_HEX = "#d32f2f"
PROBLEM_TINT = "#fdecea"
ADVISORY_HEX = "#78909c"  # the advisory section's lighter, greyed heading
ADVISORY_TINT = "#f3f5f7"
ADVISORY_STATUS_TEXT = "#263238"  # on the lightened status fills of advisory rows


def lighter(hex_colour: str, amount: float = 0.55) -> str:
    """``hex_colour`` mixed with white (``amount`` 0: unchanged, 1: white): an advisory row's status fill."""
    rgb = [int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(c + (255 - c) * amount):02x}" for c in rgb)


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
    advisory: bool = False


def prescription_text(protocol: Protocol) -> str:
    """ "30 Gy in 5 fractions (6 Gy per fraction) to PTV_Eval D90%"."""
    p = protocol
    return (
        f"{p.prescription_gy:g} Gy in {p.fractions} fractions ({p.prescription_gy / p.fractions:g} Gy per fraction) "
        f"to {p.prescription_structure} {p.prescription_metric}"
    )


def header_rows(result: ReviewResult, patient_label: Optional[str] = None) -> List[Tuple[str, str]]:
    p = result.protocol
    rows = [("Patient", patient_label)] if patient_label else []
    rows = rows + [
        ("Case", result.case),
        ("Level", result.level + _level_source(result)),
        ("Protocol", p.name),
        ("Prescription", prescription_text(p) + "; SIB: GTV escalated to 40-45 Gy (GTV D50% >= 42 Gy optimal)"),
    ]
    return rows + identity_rows(result.identity)


def _level_source(result: ReviewResult) -> str:
    source = (result.identity or {}).get("level_source", "")
    return f" (from the {source.split('(')[-1].rstrip(')')})" if "RTPLAN" in source else ""


def _when(o: dict) -> str:
    d, t = o.get("date", ""), o.get("time", "")
    date = f"{d[:4]}-{d[4:6]}-{d[6:8]}" if len(d) == 8 else d
    return f"{date} {t[:2]}:{t[2:4]}".strip() if len(t) >= 4 else date


def _system(o: dict) -> str:
    parts = [o.get("manufacturer", ""), o.get("model", ""), o.get("software_versions", "")]
    return " ".join(x for x in parts if x)


def identity_rows(identity: dict) -> List[Tuple[str, str]]:
    """Which plan, dose, structure set and CT were reviewed (DICOM reviews): label, date, UID, system."""
    rows = []
    plan, dose, structures, ct = ((identity or {}).get(k) for k in ("rtplan", "rtdose", "rtstruct", "ct"))
    if plan:
        written = (plan.get("prescription") or {}).get("as_written", "")
        rows.append(("Plan", "; ".join(x for x in (plan.get("label"), _when(plan), written, _system(plan)) if x)))
        if plan.get("sop_instance_uid"):
            rows.append(("Plan UID", plan["sop_instance_uid"]))
    if dose:
        grid = " x ".join(f"{v:g}" for v in dose.get("grid_spacing_mm", [])) + " mm grid"
        rows.append(("Dose", "; ".join(x for x in (dose.get("label"), _when(dose), grid, _system(dose)) if x)))
        rows.append(("Dose UID", dose.get("sop_instance_uid", "")))
    if structures:
        rows.append(("Structure set", "; ".join(x for x in (structures.get("label"), _when(structures)) if x)))
    if ct:
        rows.append(("CT", f"{ct.get('label', '')}; {ct.get('slices', '?')} slices; series {ct.get('series_uid', '')}"))
    return rows


# -- the verdict ------------------------------------------------------------------------------------------------


def counts_text(rows: Iterable) -> str:
    """ "6 optimal, 1 acceptable, 2 met": how many rows (anything with a ``status``) have each status."""
    return ", ".join(f"{n} {STATUS_LABEL[s].lower()}" for s, n in ev.status_counts(list(rows)).items())


def verdict_sentence(verdict: str, rows: Sequence, non_protocol: bool = False) -> str:
    """ "Verdict: PASS  (6 optimal, 1 acceptable, 2 met)" over ``rows`` (the protocol rows); with
    ``non_protocol``, "[NON-PROTOCOL REVIEW]" after the verdict."""
    flag = f"  [{NON_PROTOCOL}]" if non_protocol else ""
    counts = counts_text(rows)
    return f"Verdict: {verdict.upper()}{flag}" + (f"  ({counts})" if counts else "")


def verdict_text(result: ReviewResult, flag: bool = False) -> str:
    """The verdict line over the protocol rows (the report shows the NON-PROTOCOL banner beside it instead of
    ``flag``)."""
    return verdict_sentence(result.verdict, result.protocol_rows, flag and result.non_protocol)


def non_protocol_title(protocol_id: str) -> str:
    return f"{NON_PROTOCOL}: the review departs from protocol {protocol_id}"


def problems_heading(verdict: str) -> str:
    return PROBLEMS_INCOMPLETE if verdict == ev.INCOMPLETE else PROBLEMS_OTHER


def protocol_heading() -> str:
    """The protocol section's heading with its rule, for one-line forms (panels)."""
    return f"{PROTOCOL_HEADING} ({PROTOCOL_RULE})"


def advisory_heading() -> str:
    """The advisory section's heading with its rule, for one-line forms (terminal, table headers)."""
    return f"{ADVISORY_HEADING} ({ADVISORY_RULE})"


def advisory_verdict_sentence(advisory_verdict: Optional[str], rows: Sequence) -> Optional[str]:
    if not advisory_verdict:
        return None
    counts = counts_text(rows)
    return f"Advisory verdict: {advisory_verdict.upper()}" + (f"  ({counts})" if counts else "")


def advisory_verdict_text(result: ReviewResult) -> Optional[str]:
    """ "Advisory verdict: INCOMPLETE  (4 met)" over the advisory rows, or None when there is none."""
    return advisory_verdict_sentence(result.advisory_verdict, result.advisory_rows)


def not_contoured_sentence(level: str, structures: Sequence[str]) -> Optional[str]:
    return f"Not contoured (expected at {level}): {', '.join(structures)}" if structures else None


def not_contoured_text(result: ReviewResult) -> Optional[str]:
    return not_contoured_sentence(result.level, result.not_contoured)


def not_evaluated_sentence(segments: Sequence[str]) -> Optional[str]:
    """ "Not evaluated (no protocol structure matches them; not judged): Couch"."""
    return f"{NOT_EVALUATED_HEADING} ({NOT_EVALUATED_RULE}): {', '.join(segments)}" if segments else None


def not_evaluated_segments_text(segments: Sequence[str]) -> Optional[str]:
    """The same under a "Not evaluated" heading: "Segments (no protocol structure matches them; ...): Couch"."""
    return f"Segments ({NOT_EVALUATED_RULE}): {', '.join(segments)}" if segments else None


def has_advisory_section(result: ReviewResult) -> bool:
    return bool(result.advisory_rows or result.not_contoured)


def shown_messages(result: ReviewResult) -> List[str]:
    """The messages of the Messages section: the review-level problems are shown next to the verdict instead."""
    return [m for m in result.messages if m not in result.problems]


# -- the limits tables ----------------------------------------------------------------------------------------


def limit_rows(result: ReviewResult, rows: Optional[Sequence[ev.RowResult]] = None) -> List[LimitRow]:
    """The table rows of ``rows`` (default: every row, in protocol order). Values as judged: ``value_text``."""
    p = result.protocol
    out = []
    for r in result.rows if rows is None else rows:
        role = p.structures.get(r.structure)
        rb = metric_radiobiology(r.metric, r.value, p.fractions, role.alpha_beta_gy if role else None)
        check, flagged = DASH, False
        if r.crosscheck is not None:
            check = f"{r.crosscheck.value:.2f} ({r.crosscheck.difference:+.2f})"
            flagged = bool(r.crosscheck.flagged)
        out.append(
            LimitRow(
                structure=r.structure,
                metric=r.metric,
                value=DASH if r.value is None else r.value_text,
                eqd2=DASH if rb is None else f"{rb['eqd2_gy']:.1f} Gy (\u03b1/\u03b2 {rb['alpha_beta_gy']:g})",
                optimal=r.optimal_text or "-",
                mandatory=r.mandatory_text or "-",
                status=r.status,
                status_label=STATUS_LABEL[r.status],
                crosscheck=check,
                crosscheck_flagged=flagged,
                note=r.message or r.constraint.note,
                source=r.constraint.source or f"protocol {p.id}",
                advisory=r.advisory,
            )
        )
    return out


def status_key() -> List[Tuple[str, str]]:
    """(label, meaning) of every status, in the order of the evaluate module."""
    return [(STATUS_LABEL[s], meaning) for s, meaning in STATUS_MEANING.items()]


# -- images, volumes, footer -----------------------------------------------------------------------------------


def _mr_placement_shown(result: ReviewResult) -> bool:
    """A message says how the MR was placed (``review.fusion.place_mr`` starts it with the MR's label)."""
    return any(m.upper().startswith("MR") for m in shown_messages(result))


def image_captions(result: ReviewResult) -> Dict[str, str]:
    rx = result.protocol.prescription_gy
    wash = f"dose colour-wash from {0.5 * rx:g} Gy, isodose lines {rx:g} Gy (white) and {1.4 * rx:g} Gy (magenta)"
    fusion = "Axial MR over the CT (50%)"
    if _mr_placement_shown(result):
        fusion += "; how the MR was placed is under Messages"
    hot = hot_spot_structure(result)
    captions = {
        "axial_dose": f"Axial CT through the target centre: {wash}",
        "axial_fusion": fusion,
        "sagittal_dose": f"Sagittal CT through the target centre: {wash}",
    }
    if hot:
        captions["axial_hotspot"] = f"Axial CT through the {hot} hot spot (its highest dose, marked +): {wash}"
        captions["sagittal_hotspot"] = f"Sagittal CT through the {hot} hot spot (marked +)"
    return captions


def hot_spot_structure(result: ReviewResult) -> Optional[str]:
    """The organ at risk whose hot spot the report shows: of the cord PRV and the thecal sac, the one whose
    highest dose is nearest its limit (or furthest over it)."""

    def closeness(name: str) -> float:
        limits = [
            c.mandatory.upper
            for c in result.protocol.constraints
            if c.structure == name and c.mandatory is not None and c.mandatory.upper
        ]
        return result.dvhs[name].max / min(limits) if limits else 0.0

    present = [n for n in HOT_SPOT_STRUCTURES if n in result.dvhs]
    return max(present, key=closeness) if present else None


def legend(result: ReviewResult) -> List[Tuple[str, Tuple[float, float, float]]]:
    """(name, RGB 0-1) of the structures outlined on the slices, in the protocol's colours."""
    structures = result.protocol.structures
    present = {r for r, seg in result.resolution.segment_for_role.items() if seg is not None} | set(result.volumes)
    return [(n, tuple(structures[n].color)) for n in CONTOURED if n in structures and n in present]


def volume_rows(result: ReviewResult) -> List[Tuple[str, str, str]]:
    """(name, size, recipe) of each planning volume built."""
    return [(n, f"{v.volume_cc:.2f} cc", v.recipe) for n, v in sorted(result.volumes.items())]


def volume_problems(result: ReviewResult) -> List[str]:
    return [f"{n} not built: {msg}" for n, msg in result.volume_problems.items()]


def footer_text(result: ReviewResult, when: _dt.datetime) -> str:
    return f"SIBSpineSBRT {__version__} \u00b7 report made {when.strftime('%Y-%m-%d %H:%M')}"


# -- the trial's results beside the plan ----------------------------------------------------------------------

TRIAL_HEADING = "The trial's results beside this plan"
RADIOBIOLOGY_NOTE = (
    "EQD2 = BED / (1 + 2 Gy / (\u03b1/\u03b2)), BED = n d (1 + d / (\u03b1/\u03b2)), with n the protocol's "
    "fractions: a linear-quadratic (LQ) model estimate, for information only. \u03b1/\u03b2: 6 Gy for the tumour "
    "targets (the HyTEC local-control estimate cited by the trial's discussion), 2 Gy for the cord, thecal sac and "
    "nerves (HyTEC), 3 Gy for other late-responding organs (the conventional default). Above about 6-8 Gy per "
    "fraction the LQ model is an extrapolation."
)


@dataclass(frozen=True)
class TrialRow:
    label: str  # "GTV D50%"
    plan: str  # the plan's value as shown, or a dash
    trial: str  # "median 43.2 Gy (41.3-45.7)"
    position: str  # "within the trial's range", ...
    value: Optional[float]
    median: float
    low: float
    high: float
    unit: str
    source: str


def _plan_value(result: ReviewResult, structure: str, metric: str) -> Optional[float]:
    if metric == "Volume":
        if structure in result.volumes:
            return result.volumes[structure].volume_cc
        dvh = result.dvhs.get(structure)
        return None if dvh is None else dvh.volume_cc
    dvh = result.dvhs.get(structure)
    if dvh is None:
        return None
    try:
        return dvh.metric(metric)
    except ValueError:
        return None


def trial_rows(result: ReviewResult) -> List[TrialRow]:
    """Each result the trial reported (median and range over its patients) with the plan's own value."""
    rows = []
    for t in result.protocol.trial_results:
        unit = "cc" if t.metric == "Volume" else "Gy"
        value = _plan_value(result, t.structure, t.metric)
        rows.append(
            TrialRow(
                f"{t.structure} {t.metric}",
                DASH if value is None else f"{value:.1f} {unit}",
                f"median {t.median:g} {unit} ({t.low:g}{DASH}{t.high:g})",
                "not available" if value is None else t.position(value),
                value,
                t.median,
                t.low,
                t.high,
                unit,
                t.source,
            )
        )
    return rows


def reference_sentences(result: ReviewResult) -> List[str]:
    """The trial's reference doses (not limits) with the plan's value beside each."""
    out = []
    for r in result.protocol.reference_doses:
        value = _plan_value(result, r.structure, r.metric)
        if value is None:
            continue
        side = "at or above" if value >= r.dose_gy else "below"
        out.append(f"{r.structure} {r.metric} = {value:.1f} Gy is {side} {r.dose_gy:g} Gy ({r.label}; {r.source}).")
    return out


# -- sign-off -------------------------------------------------------------------------------------------------

SIGNOFF_HEADING = "Sign-off"


def signoff_rows(result: ReviewResult) -> List[Tuple[str, str]]:
    """(label, value) of the sign-off block; blank values (to fill by hand) when nobody has signed."""
    s = result.signoff
    decisions = " / ".join(("Approve", "Approve with comments", "Reject"))
    if s is None:
        return [("Reviewed by", ""), ("Date", ""), (f"Decision ({decisions})", ""), ("Comments", "")]
    return [("Reviewed by", s.reviewer), ("Date", s.date), ("Decision", s.decision_text), ("Comments", s.comments)]
