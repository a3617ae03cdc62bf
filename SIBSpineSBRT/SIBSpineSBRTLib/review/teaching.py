"""Teaching aids for any front end (the residents' web demo first): a review in steps, explanations of each
constraint row, the quiz, and what-ifs that scale the boost or the whole dose.

Every decision a teaching front end shows lives here, so the web app only binds it to widgets:

* the review in steps: ``open_teaching_case`` / ``open_dicom_case`` put a case into a scene (the nodes
  ``run_demo_review`` and ``sibspine review --dicom`` would create), ``build_volumes`` writes the derived
  segments, ``evaluate`` runs the same review as the CLI and stores it back in the scene;
* ``explain_row``: what a metric means, the limits and the rule that turns them into a status, where the
  limit comes from (the protocol's ``source`` and ``note``) and its EQD2, for a hover text;
* ``Quiz``: the verdict (and every row status) stays hidden until the resident has recorded a judgement;
* ``scaled_review``: the boost what-if, dose' = min(dose, Rx) + s * max(dose - Rx, 0) on a new DoseGrid and
  a fresh review of it; the whole-dose what-if through ``whatif.rescaled_review`` (the DVHs rescaled);
* display choices: status labels and colours, CT window presets, the DVH figure.

Nothing here imports Qt, VTK or slicer; scenes and nodes are touched only through ``..mrml`` helpers.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np

from ..dose.dvh import parse_metric
from ..dose.grid import DoseError, DoseGrid
from ..dose.radiobiology import metric_radiobiology
from ..protocol import evaluate as ev
from ..protocol.model import Protocol, ProtocolError, load_protocol
from ..report import content
from ..report.figures import CT_WINDOW  # the report's CT window
from ..report.status_style import STATUS_HEX, STATUS_LABEL, STATUS_MEANING, VERDICT_HEX
from .pipeline import CaseInput, ReviewResult, review_case
from .planning_volumes import PlanningOutcome, plan_volumes
from .readiness import BUILD, EVALUATE, PanelState, missing_for

# -- display choices ------------------------------------------------------------------------------------

HIDDEN, HIDDEN_LABEL, HIDDEN_HEX = "hidden", "?", "#607d8b"


#: CT window presets: key -> (label, window HU, level HU). "report" is the window of the report's figures.
CT_WINDOW_PRESETS = {
    "report": (
        f"Spine review ({CT_WINDOW[0]:g}..{CT_WINDOW[1]:g} HU)",
        CT_WINDOW[1] - CT_WINDOW[0],
        (CT_WINDOW[0] + CT_WINDOW[1]) / 2,
    ),
    "bone": ("Bone (W1800 L400)", 1800.0, 400.0),
    "soft": ("Soft tissue (W400 L40)", 400.0, 40.0),
}
DEFAULT_CT_WINDOW = "report"
DEFAULT_MR_OPACITY = 0.5
NO_MR_NOTE = "No MR in this case: the fusion view shows the CT alone."


@dataclass(frozen=True)
class WhatIfMode:
    key: str
    label: str
    minimum: float
    maximum: float
    step: float
    help: str


WHOLE, BOOST = "whole", "boost"
WHATIF_MODES = {
    WHOLE: WhatIfMode(
        WHOLE,
        "Whole dose",
        0.80,
        1.20,
        0.01,
        "Every dose in the plan multiplied by the factor (as renormalising the plan would): every dose metric "
        "scales with it.",
    ),
    BOOST: WhatIfMode(
        BOOST,
        "Boost only",
        0.50,
        1.50,
        0.05,
        "Only the dose above the prescription is scaled: dose' = min(dose, Rx) + factor x max(dose - Rx, 0) on "
        "every dose-grid voxel; voxels at or below Rx keep their dose. The GTV boost and the maxima move with the "
        "factor; coverage moves a little too, because the dose between voxels is interpolated from voxels on both "
        "sides of Rx (watch PTV_Eval D90%).",
    ),
}


# -- what each row means ----------------------------------------------------------------------------------


def describe_metric(metric: str, structure: str) -> str:
    """One sentence saying what ``metric`` measures in ``structure``."""
    spec = parse_metric(metric)
    s = structure
    if spec.kind == "D":
        x = f"{spec.value:g}"
        if spec.relative:
            text = f"{metric} is the dose that at least {x}% of {s} receives (the minimum dose of its hottest {x}%)"
            if spec.value <= 2:
                text += ": a near-maximum, less sensitive to a single hot voxel than Dmax"
            elif spec.value == 50:
                text += ": the median dose"
            elif spec.value >= 95:
                text += ": a near-minimum, the dose of the coldest part"
            elif spec.value >= 80:
                text += f": the coverage of {s}"
        else:
            text = f"{metric} is the minimum dose of the hottest {x} cc of {s}"
            if spec.value <= 0.1:
                text += ": a point maximum over a volume large enough to be measured reliably"
        return text + "."
    if spec.kind == "V":
        unit = f"percent of {s}" if spec.relative else "cc"
        return f"{metric} is the volume of {s} ({unit}) receiving at least {spec.value:g} Gy."
    return {
        "Dmax": f"Dmax is the highest dose anywhere in {s}.",
        "Dmin": f"Dmin is the lowest dose anywhere in {s}.",
        "Dmean": f"Dmean is the mean dose over the volume of {s}.",
        "Volume": f"Volume is the volume of {s} in cc.",
    }[spec.kind]


def explain_row(
    row: ev.RowResult, protocol: Protocol, result: Optional[ReviewResult] = None, reveal_status: bool = True
) -> List[str]:
    """The hover text of a constraint row, as short paragraphs: the metric, the limits and how they are
    judged, the derived structure's recipe, where the limit comes from, the EQD2, and (when revealed) why
    the row has its status."""
    c = row.constraint
    lines = [describe_metric(c.metric, c.structure)]
    if (c.structure, c.metric) == (protocol.prescription_structure, protocol.prescription_metric):
        lines.append(
            f"This is the prescription: {protocol.prescription_gy:g} Gy in {protocol.fractions} fractions to "
            f"{c.structure} {c.metric}; the plan is normalised to it."
        )
    limits = []
    if c.optimal is not None:
        limits.append(f"optimal {c.optimal.describe(c.unit)}")
    if c.mandatory is not None:
        limits.append(f"mandatory {c.mandatory.describe(c.unit)}")
    if c.optimal is None:
        rule = "Within the mandatory limit: MET (the protocol gives no optimal level); outside it: FAIL."
    else:
        rule = (
            "Within the optimal limit: OPTIMAL; within the mandatory limit only: ACCEPTABLE; outside the mandatory "
            "limit: FAIL."
        )
    step = f"{c.precision:g}%" if c.unit == "%" else f"{c.precision:g} {c.unit}"
    lines.append(f"Limits: {'; '.join(limits)}. {rule} The value is judged as shown, rounded to {step}.")
    if result is not None and c.structure in result.volumes:
        lines.append(f"{c.structure} is built by this software: {result.volumes[c.structure].recipe}.")
    source = f"Where the limit comes from: {c.source or 'the protocol file ' + protocol.id}."
    if c.note:
        source += f" {c.note.rstrip('.')}."
    if not c.confirmed:
        source += (
            " This is a literature default, not a limit of the trial: a clinic must confirm it. It is advisory: it "
            "never decides the verdict."
        )
    lines.append(source)
    role = protocol.structures.get(c.structure)
    rb = metric_radiobiology(c.metric, row.value, protocol.fractions, role.alpha_beta_gy if role else None)
    if rb is not None:
        lines.append(
            f"For information: {row.value_text} in {protocol.fractions} fractions is an EQD2 of "
            f"{rb['eqd2_gy']:.1f} Gy (BED {rb['bed_gy']:.1f} Gy, alpha/beta {rb['alpha_beta_gy']:g} Gy)."
        )
    if row.status == ev.NOT_EVALUABLE:
        lines.append(f"Not evaluable: {row.message}")
    elif reveal_status:
        lines.append(f"{STATUS_LABEL[row.status]}: {STATUS_MEANING[row.status]}.")
    return lines


# -- the quiz ------------------------------------------------------------------------------------------------

QUIZ_CHOICES = {
    ev.PASS: "Pass: every mandatory limit is met",
    ev.FAIL: "Fail: a mandatory limit is broken",
    ev.INCOMPLETE: "Cannot judge: something needed is missing",
}


@dataclass
class Quiz:
    """Quiz mode: the verdict and the row statuses stay hidden until the resident records a judgement."""

    enabled: bool = False
    answer: Optional[str] = None

    def record(self, answer: str) -> None:
        key = str(answer).strip().lower()
        if key not in QUIZ_CHOICES:
            raise ValueError(f"A judgement is one of {', '.join(QUIZ_CHOICES)}; got {answer!r}.")
        self.answer = key

    def reset(self) -> None:
        """A new case or a new evaluation: a new question."""
        self.answer = None

    @property
    def hides_verdict(self) -> bool:
        return self.enabled and self.answer is None

    def is_correct(self, result: ReviewResult) -> Optional[bool]:
        return None if self.answer is None else self.answer == result.verdict

    def feedback(self, result: ReviewResult) -> str:
        """What the resident is told once the judgement is recorded ("" before)."""
        if self.answer is None:
            return ""
        head = "Correct." if self.is_correct(result) else f"Not quite: you judged {self.answer.upper()}."
        return f"{head} {verdict_reason(result)}"


def verdict_reason(result: ReviewResult) -> str:
    """One or two sentences justifying the verdict from the protocol rows (advisory rows never decide it) and
    the review-level problems."""
    rows = result.protocol_rows
    fails = [r for r in rows if r.status == ev.FAIL]
    missing = [r for r in rows if r.status == ev.NOT_EVALUABLE]
    if fails:
        parts = [f"{r.structure} {r.metric} = {r.value_text} (mandatory {r.mandatory_text})" for r in fails]
        return f"The plan FAILS: {'; '.join(parts)}."
    if missing or result.problems:
        why = [f"{r.structure} {r.metric}: {r.message}" for r in missing] + list(result.problems)
        return "The review is INCOMPLETE: " + " ".join(why)
    return f"The plan PASSES: every mandatory limit is met ({status_counts(result)})."


def status_counts(result: ReviewResult) -> str:
    """ "6 optimal, 1 acceptable, 2 met" over the protocol rows (those that decide the verdict)."""
    return content.counts_text(result.protocol_rows)


# -- the panel --------------------------------------------------------------------------------------------


def panel_rows(result: ReviewResult, quiz: Optional[Quiz] = None) -> List[Dict[str, object]]:
    """The constraint rows as plain dicts for a front end (status hidden while the quiz waits): the protocol
    rows, then the advisory ones (``advisory`` True: shown apart, lighter). Values as judged: ``value_text``."""
    hide = quiz is not None and quiz.hides_verdict
    rows = []
    for r in result.protocol_rows + result.advisory_rows:
        colour = STATUS_HEX[r.status]
        rows.append(
            {
                "key": f"{r.structure} {r.metric}",
                "structure": r.structure,
                "metric": r.metric,
                "value": r.value_text,
                "optimal": r.optimal_text or "-",
                "mandatory": r.mandatory_text or "-",
                "status": HIDDEN if hide else r.status,
                "label": HIDDEN_LABEL if hide else STATUS_LABEL[r.status],
                "color": HIDDEN_HEX if hide else colour,
                "advisory": r.advisory,
                "source": r.constraint.source or f"protocol {result.protocol.id}",
                "help": explain_row(r, result.protocol, result, reveal_status=not hide),
            }
        )
    return rows


def verdict_banner(result: ReviewResult, quiz: Optional[Quiz] = None) -> Dict[str, object]:
    """What stands at the top of the panel: the verdict line over the protocol rows (hidden while the quiz waits
    for a judgement), the NON-PROTOCOL banner with the deviations (always shown: it is a fact about the review,
    not the answer), the review-level problems, the advisory section's texts and the segments not evaluated."""
    hidden = quiz is not None and quiz.hides_verdict
    out: Dict[str, object] = {
        "non_protocol": result.non_protocol,
        "non_protocol_title": content.non_protocol_title(result.protocol.id) if result.non_protocol else "",
        "deviations": list(result.deviations),
        "non_protocol_color": content.NON_PROTOCOL_HEX,
        "advisory": content.has_advisory_section(result),
        "advisory_heading": content.ADVISORY_HEADING,
        "advisory_note": content.ADVISORY_NOTE,
        "advisory_color": content.ADVISORY_HEX,
        "not_contoured_text": content.not_contoured_text(result) or "",
        "not_evaluated_text": content.not_evaluated_sentence(result.not_evaluated) or "",
        "protocol_heading": content.protocol_heading(),
    }
    if hidden:
        out.update(
            verdict=HIDDEN,
            text="Verdict hidden: judge the plan from the values and limits, then record your answer.",
            color=HIDDEN_HEX,
            problems_heading="",
            problems=[],
            advisory_verdict_text="",
        )
        return out
    out.update(
        verdict=result.verdict,
        text=content.verdict_text(result),
        color=VERDICT_HEX.get(result.verdict, HIDDEN_HEX),
        problems_heading=content.problems_heading(result.verdict) if result.problems else "",
        problems=list(result.problems),
        advisory_verdict_text=content.advisory_verdict_text(result) or "",
    )
    return out


def dvh_png(result: ReviewResult) -> Optional[bytes]:
    """The DVH figure of the report (evaluated structures, limits drawn), or None without DVHs."""
    from ..report.figures import review_dvh_png

    return review_dvh_png(result)


# -- what-ifs --------------------------------------------------------------------------------------------------


def boost_scaled_dose(dose: DoseGrid, prescription_gy: float, factor: float) -> DoseGrid:
    """dose' = min(dose, Rx) + factor * max(dose - Rx, 0): the dose above the prescription scaled, the rest
    unchanged (a new DoseGrid; the original is untouched)."""
    if not (math.isfinite(factor) and factor >= 0):
        raise DoseError(f"Boost scale factor must be a finite number >= 0; got {factor}.")
    if not prescription_gy > 0:
        raise DoseError(f"The prescription must be > 0 Gy; got {prescription_gy}.")
    d = dose.array
    out = np.minimum(d, prescription_gy) + factor * np.maximum(d - prescription_gy, 0.0)
    return DoseGrid(out, dose.geometry, f"{dose.name} boost x{factor:.2f}")


def boost_scaled_review(
    result: ReviewResult, factor: float, role_overrides: Optional[Mapping[str, str]] = None, **review_options
) -> ReviewResult:
    """A fresh review of the boost-scaled dose (the DVHs are recomputed: the transform is not linear).
    ``role_overrides`` default to those of ``result``; ``review_options`` as ``review_case`` takes them."""
    case = result.inputs
    if case is None or case.dose is None:
        raise DoseError("The boost what-if needs the reviewed plan's dose.")
    dose = boost_scaled_dose(case.dose, result.protocol.prescription_gy, factor)
    scaled = dataclasses.replace(case, dose=dose)  # everything else as reviewed (contours, the plan's fractions)
    overrides = result.resolution.overridden if role_overrides is None else role_overrides
    return review_case(scaled, result.protocol, overrides or None, **review_options)


@dataclass
class ScaledReview:
    mode: str
    factor: float
    result: ReviewResult
    dose: Optional[DoseGrid]
    description: str


def scaled_review(result: ReviewResult, mode: str, factor: float, **review_options) -> ScaledReview:
    """The what-if of ``mode`` (``WHOLE`` or ``BOOST``) at ``factor``; factor 1 returns ``result`` itself."""
    from .whatif import rescaled_review

    if mode not in WHATIF_MODES:
        raise ValueError(f"What-if mode must be one of {', '.join(WHATIF_MODES)}; got {mode!r}.")
    factor = float(factor)
    rx = result.protocol.prescription_gy
    dose = result.inputs.dose if result.inputs is not None else None
    if factor == 1.0:
        return ScaledReview(mode, 1.0, result, dose, "The plan as delivered (factor 1).")
    if mode == WHOLE:
        if not (math.isfinite(factor) and factor > 0):
            raise DoseError(f"Dose scale factor must be a finite number > 0; got {factor}.")
        scaled = rescaled_review(result, factor)
        text = f"What-if: the whole dose x {factor:.2f}; every dose metric x {factor:.2f} (DVHs rescaled)."
        return ScaledReview(mode, factor, scaled, scaled.inputs.dose if scaled.inputs else None, text)
    scaled = boost_scaled_review(result, factor, **review_options)
    text = (
        f"What-if: the dose above {rx:g} Gy x {factor:.2f}, the dose at or below {rx:g} Gy unchanged (DVHs recomputed)."
    )
    return ScaledReview(mode, factor, scaled, scaled.inputs.dose if scaled.inputs else None, text)


# -- the review in steps --------------------------------------------------------------------------------------


@dataclass
class ReviewSession:
    """One case open in a scene, reviewed in steps. ``data`` is read from the nodes when the case is opened,
    before any derived segment exists, exactly as ``run_demo_review`` reads it."""

    scene: object
    protocol: Protocol
    nodes: object  # mrml.case.CaseNodes (ct, segmentation, dose, mr)
    data: CaseInput
    title: str
    level: str
    dicom: object = None  # caseio.case_loader.DicomCase for a DICOM folder
    role_overrides: Dict[str, str] = field(default_factory=dict)
    planned: Optional[PlanningOutcome] = None
    result: Optional[ReviewResult] = None
    quiz: Quiz = field(default_factory=Quiz)
    notes: List[str] = field(default_factory=list)

    @property
    def has_mr(self) -> bool:
        return getattr(self.nodes, "mr", None) is not None

    @property
    def fusion_note(self) -> str:
        return "" if self.has_mr else NO_MR_NOTE

    def missing(self) -> Dict[str, List[str]]:
        """For Build, Evaluate, the what-if and the report: what is missing (empty: the action is possible)."""
        state = PanelState(
            ct=self.nodes.ct is not None,
            mr=self.has_mr,
            segmentation=self.nodes.segmentation is not None,
            dose=self.data.dose is not None,
            level=self.level,
            evaluated=self.result is not None,
            volumes_built=self.planned is not None,
        )
        out = missing_for(state)
        what_if = [] if self.result is not None else ["Evaluate the plan first."]
        if self.result is not None and self.result.inputs is not None and self.result.inputs.dose is None:
            what_if = ["The plan has no dose to scale."]
        return {BUILD: out[BUILD], EVALUATE: out[EVALUATE], "what_if": what_if, "report": report_missing(self)}

    def focus_ras(self) -> Optional[Tuple[float, float, float]]:
        """Where to centre the slice views: the GTV, else the CTV (by protocol role), else None."""
        from ..protocol.roles import resolve_roles

        try:
            resolution = resolve_roles(
                self.protocol, list(self.data.masks), self.role_overrides or None, self.data.masks
            )
        except ProtocolError:
            return None
        for role in ("GTV", "CTV"):
            name = resolution.get(role)
            if name and not self.data.masks[name].is_empty:
                return tuple(float(v) for v in self.data.masks[name].centroid_ras())
        return None


def default_cache_dir():
    """Where built teaching cases are kept: $SIBSPINE_CACHE_DIR, else $XDG_CACHE_HOME/sibspine-sbrt, else
    ~/.cache/sibspine-sbrt."""
    import os
    from pathlib import Path

    if os.environ.get("SIBSPINE_CACHE_DIR"):
        return Path(os.environ["SIBSPINE_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sibspine-sbrt"


def _code_digest() -> str:
    """A hash of the library's source (front ends aside): a cached case is reused only by the code that built it."""
    import hashlib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        if "frontends" in path.relative_to(root).parts:
            continue
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


@dataclass
class PreparedCase:
    """A teaching case built in memory and its MR registered to the CT (numpy only, so a worker thread
    can make it; cached as a whole)."""

    case: object  # phantoms.cases.PhantomCase
    mr_to_ct: Optional[np.ndarray]  # 4x4 RAS from our registration (not the phantom's known truth)


def _prepare(case: str, variant: str) -> PreparedCase:
    from ..registration.rigid import register_rigid
    from .demo import build_teaching_case

    built = build_teaching_case(case, variant)
    if built.mr_t1 is None:
        return PreparedCase(built, None)
    reg = register_rigid(built.ct, built.ct_geometry, built.mr_t1, built.mr_geometry, fixed_mask=built.registration_roi)
    return PreparedCase(built, reg.moving_to_fixed)


def prepare_teaching_case(case: str = "thoracic", variant: str = "pass", cache_dir=None) -> PreparedCase:
    """Build the in-memory teaching case and register its MR (no scene: may run in a worker thread).

    The phantoms are deterministic, so with ``cache_dir`` the prepared case is kept there (one pickle per case,
    variant and version of the library's code, written by this function only) and read back next time."""
    import pickle
    from pathlib import Path

    if cache_dir is None:
        return _prepare(case, variant)
    folder = Path(cache_dir)
    path = folder / f"teaching-{case}-{variant}-{_code_digest()}.pickle"
    if path.is_file():
        try:
            with open(path, "rb") as f:
                cached = pickle.load(f)
            if isinstance(cached, PreparedCase):
                return cached
        except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError):
            pass  # unreadable: rebuilt and rewritten below
    prepared = _prepare(case, variant)
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_suffix(f".{id(prepared)}.tmp")
        with open(tmp, "wb") as f:
            pickle.dump(prepared, f, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(path)
    except OSError:
        pass  # a read-only cache only costs time
    return prepared


def open_teaching_case(
    scene, case: str = "thoracic", variant: str = "pass", protocol: Optional[Protocol] = None, built=None
) -> ReviewSession:
    """Put a teaching case into ``scene`` as ``run_demo_review`` does (same nodes, same review input), with its
    MR T1 shown through the registration, without reviewing it yet. ``built``: the ``PreparedCase`` from
    ``prepare_teaching_case`` when it was prepared beforehand."""
    from ..mrml.case import CaseNodes, add_case_nodes, case_input_from_nodes
    from ..mrml.volumes import add_volume
    from ..registration.mrml_transform import apply_to_moving

    protocol = protocol or load_protocol()
    prepared = built if built is not None else prepare_teaching_case(case, variant)
    phantom = prepared.case
    nodes = add_case_nodes(scene, phantom)
    if phantom.mr_t1 is not None:
        mr = add_volume(scene, phantom.mr_t1, phantom.mr_geometry, "MR T1")
        if prepared.mr_to_ct is not None:
            apply_to_moving(scene, mr, prepared.mr_to_ct, nodes.ct)
        nodes = CaseNodes(nodes.ct, nodes.segmentation, nodes.dose, mr)
    data = case_input_from_nodes(scene, nodes.segmentation, nodes.dose, phantom.level, phantom.name)
    title = f"{case} ({variant}) - {phantom.name}, level {phantom.level}"
    return ReviewSession(scene, protocol, nodes, data, title, phantom.level)


def open_dicom_case(scene, folder, protocol: Optional[Protocol] = None, level: Optional[str] = None) -> ReviewSession:
    """Load a DICOM-RT case folder into ``scene`` as ``sibspine review --dicom`` does. The level is the one
    given, else the one the RTPLAN label states; the fusion view gets the MR registered to the CT, if any."""
    from ..caseio.case_loader import load_dicom_case
    from ..mrml.case import CaseNodes
    from ..protocol.model import normalise_level
    from .dicom_review import case_level, mr_for_fusion

    protocol = protocol or load_protocol()
    case = load_dicom_case(folder, scene, on_dose_error="record")
    lvl = normalise_level(case_level(case, level))
    data = case.case_input(lvl, case.default_name)
    mr, _ = mr_for_fusion(case)
    notes = list(case.messages)
    if case.mr and mr is None:
        notes.append("No MR series shares the planning CT's frame of reference: the fusion view shows the CT alone.")
    nodes = CaseNodes(case.ct, case.segmentation, case.dose, mr)
    session = ReviewSession(scene, protocol, nodes, data, f"{case.default_name}, level {lvl}", lvl, dicom=case)
    session.notes = notes
    return session


def build_volumes(session: ReviewSession) -> PlanningOutcome:
    """Build PTV, PTV_Eval and SpinalCord_PRV02 from the case's segments and write them as derived segments
    (recipe-tagged; the source segments are never modified). Volumes that cannot be built are in
    ``problems``, with the reason."""
    from ..mrml.segmentations import write_derived_segment

    p = session.protocol
    planned = plan_volumes(p, session.data.masks, session.level, session.role_overrides or None)
    for name, volume in planned.volumes.items():
        color = p.structures[name].color if name in p.structures else (0.5, 0.5, 0.5)
        write_derived_segment(session.nodes.segmentation, volume.mask, name, color, volume.recipe)
    session.planned = planned
    return planned


def compute_review(session: ReviewSession) -> ReviewResult:
    """The review of the case, as the CLI computes it: ``review_case`` on the input read when the case was
    opened (numpy only: may run in a worker thread), or ``review_dicom_case`` for a DICOM folder (it reads the
    segments from the scene again: run it on the thread that owns the scene)."""
    if session.dicom is not None:
        from .dicom_review import review_dicom_case

        return review_dicom_case(
            session.dicom, session.protocol, session.level, session.data.name, session.role_overrides or None
        )
    return review_case(session.data, session.protocol, session.role_overrides or None)


def store_evaluation(session: ReviewSession, result: ReviewResult) -> ReviewResult:
    """Store a review in the scene (derived segments and results table) as the CLI does; a new evaluation
    asks the quiz anew."""
    from ..mrml.case import store_review

    store_review(session.scene, session.nodes.segmentation, result)
    session.result = result
    session.quiz.reset()
    return result


def evaluate(session: ReviewSession) -> ReviewResult:
    """``compute_review`` then ``store_evaluation``."""
    return store_evaluation(session, compute_review(session))


def report_missing(session: ReviewSession) -> List[str]:
    """What stands between the session and its PDF report (empty: it can be made)."""
    if session.result is None:
        return ["Evaluate the plan first."]
    if session.quiz.hides_verdict:
        return ["Judge the plan in the quiz first: the report shows every status."]
    return []


def report_pdf(session: ReviewSession) -> bytes:
    """The evaluated plan's PDF report, as ``sibspine review`` writes it (CT slices with the dose, the MR fused
    through its registration). Reads the scene's nodes: run it on the thread that owns the scene."""
    from ..registration.mrml_transform import node_to_world
    from ..report.outputs import report_images
    from ..report.pdf_report import build_pdf

    problems = report_missing(session)
    if problems:
        raise ValueError(" ".join(problems))
    nodes = session.nodes
    mr = getattr(nodes, "mr", None)
    images = report_images(session.result, nodes.ct, mr, node_to_world(mr) if mr is not None else None)
    return build_pdf(session.result, images)
