"""The plan review: segments and dose in, planning volumes, DVHs, judged constraints and a verdict out.

Pure numpy on Masks and a DoseGrid; the MRML adapters feed it and store what it returns. Every front end
(Slicer module, CLI, web demo) calls ``review_case``.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np

from ..dose.coverage import LOW_BOUNDARY_FRACTION, TARGET_OUTSIDE_TOLERANCE, boundary_dose_gy
from ..dose.dvh import DVH, compute_dvh, parse_metric, percent_text
from ..dose.grid import DoseError, DoseGrid
from ..geometry.margins import Margins
from ..geometry.masks import Mask, union_all
from ..protocol import evaluate as ev
from ..protocol.model import Constraint, Protocol, ProtocolError, normalise_level
from ..protocol.roles import RoleResolution
from ..warnings import DoseWarning
from .deviations import protocol_deviations
from .planning_volumes import CORD_STRUCTURES, PlanningVolume, cord_not_applicable, plan_volumes

#: A prescription metric outside this range (x Rx) is refused as a probable unit or file error.
PLAUSIBLE_RX_RANGE = (0.3, 3.0)
#: The GTV may lie outside the CTV by at most this fraction of its volume (rasterisation differences).
GTV_OUTSIDE_CTV_TOLERANCE = 0.01


@dataclass
class CaseInput:
    """What a review needs: segment masks by segment name (all on one grid) and a dose."""

    name: str
    level: str
    masks: Dict[str, Mask]
    dose: Optional[DoseGrid] = None
    dose_problem: str = ""  # why there is no dose, when there is none
    plan_fractions: Optional[int] = None  # as the plan (RTPLAN) states them, when known
    plan_dose_gy: Optional[float] = None  # the plan's prescription dose, when known
    plan_problems: List[str] = field(default_factory=list)  # why the plan's fractionation could not be checked
    # segment name -> ``dose.contours.ContourStructure`` for the segments that come as planar contours (an
    # RTSTRUCT): their planning volumes are built and their DVHs computed on the contours (one geometry per
    # source); the masks stay for display, storage and the checks on the CT grid
    contours: Dict[str, object] = field(default_factory=dict)


@dataclass
class ReviewResult:
    case: str
    level: str
    protocol: Protocol
    resolution: RoleResolution
    volumes: Dict[str, PlanningVolume]
    volume_problems: Dict[str, str]
    dvhs: Dict[str, DVH]
    rows: List[ev.RowResult]
    verdict: str
    messages: List[str] = field(default_factory=list)
    inputs: Optional[CaseInput] = None  # what was reviewed (for what-ifs and reports)
    problems: List[str] = field(default_factory=list)  # review-level reasons that stop a pass
    deviations: List[str] = field(default_factory=list)  # where the review departs from its protocol
    not_contoured: List[str] = field(default_factory=list)  # organs expected at this level, absent
    not_evaluated: List[str] = field(default_factory=list)  # segments that match no protocol structure
    advisory_verdict: Optional[str] = None  # over the unconfirmed (advisory) rows only
    signoff: Optional[object] = None  # report.signoff.SignOff, set by a front end when the physicist signs
    identity: Dict[str, object] = field(default_factory=dict)  # which objects were reviewed (caseio.identity)

    def dvh_curves(self, step_gy: Optional[float] = None) -> Dict[str, tuple]:
        """Cumulative DVHs (dose Gy, volume %) of the structures the protocol evaluates (with the cord), in
        protocol order: what every DVH plot shows (CTV and PTV are construction steps, not shown). The curves
        share one dose step, by default ``dose.dvh.curve_step_gy`` of their highest Dmax (at most
        ``MAX_CURVE_LEVELS`` levels each, whatever the dose's magnitude)."""
        from ..dose.dvh import curve_step_gy

        shown = {c.structure for c in self.protocol.constraints} | {"SpinalCord"}
        names = [n for n in self.protocol.structures if n in self.dvhs and n in shown]
        if step_gy is None:
            step_gy = curve_step_gy(max([self.dvhs[n].max for n in names] + [0.0]))
        return {n: self.dvhs[n].curve(step_gy) for n in names}

    @property
    def missing_roles(self) -> List[str]:
        needed = {c.structure for c in self.protocol.required_constraints}
        return [r for r, seg in self.resolution.segment_for_role.items() if seg is None and r in needed]

    @property
    def protocol_rows(self) -> List[ev.RowResult]:
        return [r for r in self.rows if not r.advisory]

    @property
    def advisory_rows(self) -> List[ev.RowResult]:
        return [r for r in self.rows if r.advisory]

    @property
    def non_protocol(self) -> bool:
        return bool(self.deviations)

    @property
    def exit_code(self) -> int:
        """0: a protocol pass; 1: a mandatory limit failed; 2: anything else (incomplete, or every limit met in a
        non-protocol review, which is not a protocol pass). Every headless front end exits with this."""
        if self.verdict == ev.FAIL:
            return 1
        return 0 if self.verdict == ev.PASS and not self.deviations else 2


def structure_masks(
    resolution: RoleResolution,
    masks: Mapping[str, Mask],
    volumes: Mapping[str, PlanningVolume],
    protocol: Optional[Protocol] = None,
) -> Dict[str, Mask]:
    """Protocol structure -> mask, from the resolved source segments, unions the protocol declares (e.g. both
    kidneys) and the built planning volumes."""
    out = {role: masks[seg].renamed(role) for role, seg in resolution.segment_for_role.items() if seg is not None}
    for role, spec in (protocol.structures if protocol is not None else {}).items():
        if spec.union_of and role not in out and all(p in out for p in spec.union_of):
            out[role] = union_all([out[p] for p in spec.union_of], role)
    out.update({name: v.mask for name, v in volumes.items()})
    return out


def dvh_structures(
    resolution: RoleResolution,
    contours: Mapping[str, object],
    volumes: Mapping[str, PlanningVolume],
    masks: Mapping[str, Mask],
) -> Dict[str, object]:
    """Protocol structure -> what its DVH is computed on: the contours of a role whose segment comes as planar
    contours and of a planning volume built on contours (one geometry per source), else its mask
    (``structure_masks``)."""
    out: Dict[str, object] = dict(masks)
    for role, seg in resolution.segment_for_role.items():
        if seg is not None and seg in contours:
            out[role] = dataclasses.replace(contours[seg], name=role)
    out.update({name: v.structure for name, v in volumes.items()})
    return out


def _end_slice_dose_gy(mask: Mask, dose: Optional[DoseGrid]) -> Optional[float]:
    """Highest dose at the mask's voxels on the end slices it touches (None: no dose, or not on the grid)."""
    if dose is None:
        return None
    axis, n = mask.slice_axis(), mask.array.shape[mask.slice_axis()]
    kji = np.argwhere(mask.array)
    kji = kji[(kji[:, axis] == 0) | (kji[:, axis] == n - 1)]
    values, inside = dose.sample(mask.geometry.ijk_to_ras_points(kji[:, ::-1].astype(float)))
    return float(values.max()) if inside.all() else None


def _cut_structures(protocol: Protocol, structures: Mapping[str, Mask], dose: Optional[DoseGrid]):
    """Structures touching the first or last slice of their grid, probably cut by the image or segmentation
    extent: {target: sentence} (their rows are not evaluable) and {organ at risk: highest dose at the cut, or
    None when unknown} (judged per row by ``_cut_oar_messages``)."""
    targets, oars = {}, {}
    for name, mask in structures.items():
        spec = protocol.structures.get(name)
        if spec is None or spec.kind == "reference" or not isinstance(mask, Mask):
            continue
        ends = mask.touched_end_slices()
        if not ends:
            continue
        if spec.kind == "oar":
            oars[name] = _end_slice_dose_gy(mask, dose)
            continue
        targets[name] = (
            f"{name} reaches the {' and the '.join(ends)} slice of its image grid ({mask.geometry.describe()}): "
            "it was probably cut by the CT or segmentation extent, so its volume and dose are incomplete. Use a CT "
            "and segmentation that cover the whole target with margin."
        )
    return targets, oars


def _cut_oar_messages(rows: List[ev.RowResult], cut_oars: Mapping[str, Optional[float]]) -> List[str]:
    """A warning per cut organ at risk naming its rows that the missing part could change: any relative or
    whole-volume metric, and a hot-spot metric (Dxcc, Dmax) whose value is not above the dose at the cut."""
    affected: Dict[str, List[str]] = {}
    for r in rows:
        if r.structure not in cut_oars or r.value is None:
            continue
        edge = cut_oars[r.structure]
        spec = parse_metric(r.metric)
        hot_spot = (spec.kind == "D" and not spec.relative) or spec.kind == "Dmax"
        if hot_spot and edge is not None and edge < r.value:
            continue  # tissue beyond the cut receives less than this value: it cannot change it
        affected.setdefault(r.structure, []).append(r.metric)
    out = []
    for name, metrics in affected.items():
        edge = cut_oars[name]
        at = "unknown" if edge is None else f"{edge:.2f} Gy"
        out.append(
            f"Warning: {name} reaches the end of its image grid (dose there {at}): it is probably cut by the CT or "
            f"segmentation extent, and its {', '.join(metrics)} may change with the missing part. Extend the CT and "
            "the contour to judge it."
        )
    return out


def _coverage_problem(
    protocol: Protocol, name: str, dvh: DVH, structure, dose: DoseGrid
) -> Tuple[Optional[DVH], Optional[str], Optional[str]]:
    """(DVH to judge, why not evaluable, note) for a structure partly outside the dose grid (module
    ``dose.coverage``)."""
    f = dvh.fraction_outside
    if f <= 0:
        return dvh, None, None
    pct = percent_text(f)
    kind = protocol.structures[name].kind if name in protocol.structures else "oar"
    if kind == "target":
        if f <= TARGET_OUTSIDE_TOLERANCE:
            return (
                dvh,
                None,
                f"{pct} of {name} lies outside the dose grid (tolerance {100 * TARGET_OUTSIDE_TOLERANCE:g}%).",
            )
        return (
            None,
            (
                f"{pct} of {name} lies outside the dose grid {dose.name} ({dose.geometry.describe()}); a target "
                f"must be covered (tolerance {100 * TARGET_OUTSIDE_TOLERANCE:g}% of its volume). Recompute the dose "
                "on a grid that covers every target."
            ),
            None,
        )
    limit = LOW_BOUNDARY_FRACTION * protocol.prescription_gy
    edge = boundary_dose_gy(structure, dose) if isinstance(structure, Mask) else None
    if edge is not None and edge < limit:
        note = (
            f"{pct} of {name} lies outside the dose grid; the grid's edge dose where it leaves is "
            f"{edge:.2f} Gy (< {limit:g} Gy, {100 * LOW_BOUNDARY_FRACTION:g}% of the prescription), so that part is "
            "counted as 0 Gy."
        )
        return dvh.with_outside_at_zero(), None, note
    edge_text = "unknown" if edge is None else f"{edge:.2f} Gy"
    return (
        None,
        (
            f"{pct} of {name} lies outside the dose grid {dose.name} where the grid's edge dose is {edge_text} "
            f"(not below {limit:g} Gy, {100 * LOW_BOUNDARY_FRACTION:g}% of the prescription): the dose to that part "
            "is unknown. Recompute the dose on a grid that covers the organ where it is irradiated."
        ),
        None,
    )


def _plausibility(protocol: Protocol, dvhs: Mapping[str, DVH]) -> None:
    """Refuse a dose whose prescription metric is far from the prescription: a probable unit error."""
    dvh = dvhs.get(protocol.prescription_structure)
    if dvh is None:
        return
    try:
        value = dvh.metric(protocol.prescription_metric)
    except (DoseError, ValueError):
        return
    rx = protocol.prescription_gy
    if not PLAUSIBLE_RX_RANGE[0] * rx <= value <= PLAUSIBLE_RX_RANGE[1] * rx:
        raise DoseError(
            f"{protocol.prescription_structure} {protocol.prescription_metric} is {value:.4g} Gy for a prescription "
            f"of {rx:g} Gy ({100 * value / rx:.0f}%, outside {100 * PLAUSIBLE_RX_RANGE[0]:g}-"
            f"{100 * PLAUSIBLE_RX_RANGE[1]:g}%): probably a dose unit error (cGy read as Gy or the reverse), a "
            "per-fraction or per-beam dose, or the wrong dose file. Check the dose's unit and that it is the plan's "
            "total dose; nothing was judged."
        )


def _plan_problems(protocol: Protocol, case: CaseInput) -> List[str]:
    out = list(case.plan_problems)
    if case.plan_fractions is not None and case.plan_fractions != protocol.fractions:
        out.append(
            f"The plan is {case.plan_fractions} fractions; protocol {protocol.id} is {protocol.fractions}. Its limits "
            "(and the EQD2 column) assume the protocol's fractionation, so the plan cannot pass this review."
        )
    if case.plan_dose_gy is not None and abs(case.plan_dose_gy - protocol.prescription_gy) > 0.01:
        out.append(
            f"The plan prescribes {case.plan_dose_gy:g} Gy; protocol {protocol.id} prescribes "
            f"{protocol.prescription_gy:g} Gy. The plan cannot pass a review against another prescription."
        )
    return out


def _contouring_problems(structures: Mapping[str, Mask]) -> List[str]:
    gtv, ctv = structures.get("GTV"), structures.get("CTV")
    if not isinstance(gtv, Mask) or not isinstance(ctv, Mask) or gtv.is_empty or ctv.is_empty:
        return []
    if not gtv.geometry.same_grid(ctv.geometry):
        return []
    outside = gtv.subtract(ctv).volume_cc
    if outside > GTV_OUTSIDE_CTV_TOLERANCE * gtv.volume_cc:
        return [
            f"{outside:.2f} cc of the GTV ({100 * outside / gtv.volume_cc:.1f}%) lies outside the CTV "
            f"(GTV {gtv.volume_cc:.2f} cc, CTV {ctv.volume_cc:.2f} cc): the CTV must contain the GTV. Check that "
            "the GTV and CTV roles point to the right structures and correct the contours."
        ]
    return []


def review_case(
    case: CaseInput,
    protocol: Protocol,
    role_overrides: Optional[Mapping[str, str]] = None,
    ptv_margins: Optional[Margins] = None,
    prv_margin_mm: Optional[float] = None,
) -> ReviewResult:
    """Build the planning volumes, compute the DVHs and judge every constraint of ``protocol``."""
    level = normalise_level(case.level)
    messages: List[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        planned = plan_volumes(protocol, case.masks, level, role_overrides, ptv_margins, prv_margin_mm, case.contours)
        resolution, volumes, volume_problems = planned.resolution, planned.volumes, planned.problems
        structures = structure_masks(resolution, case.masks, volumes, protocol)
        evaluated = dvh_structures(resolution, case.contours, volumes, structures)
        cut, cut_oars = _cut_structures(protocol, structures, case.dose)
        dvhs: Dict[str, DVH] = {}
        dvh_problems: Dict[str, str] = {}
        wanted = {c.structure for c in protocol.constraints} | {
            n for n, s in protocol.structures.items() if s.kind in ("target", "oar")
        }
        for name in sorted(wanted & set(structures)):
            if name in cut:
                dvh_problems[name] = cut[name]
                continue
            if case.dose is None:
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DoseWarning)  # coverage is judged below, not warned
                    dvh = compute_dvh(evaluated[name], case.dose)
            except DoseError as exc:
                dvh_problems[name] = str(exc)
                continue
            dvh, problem, note = _coverage_problem(protocol, name, dvh, structures[name], case.dose)
            if problem:
                dvh_problems[name] = problem
            else:
                dvhs[name] = dvh
            if note:
                messages.append(note)
    messages += [f"Warning: {w.message}" for w in caught]
    _plausibility(protocol, dvhs)

    def why_missing(structure: str) -> str:
        if structure in dvh_problems:
            return dvh_problems[structure]
        if structure in volume_problems:
            return planned.problem_message(protocol, structure)
        if structure not in structures:
            spec = protocol.structures.get(structure)
            if spec is not None and spec.union_of:
                parts = " or ".join([structure, " + ".join(spec.union_of)])
                return f"No segment for {structure} ({parts}). " + resolution.missing_message(protocol, structure)
            return resolution.missing_message(protocol, structure)
        return case.dose_problem or "No dose volume was given."

    def metric_value(c: Constraint) -> float:
        dvh = dvhs.get(c.structure)
        if dvh is None and c.structure in CORD_STRUCTURES and cord_not_applicable(protocol, level, resolution):
            raise ev.NotApplicable(
                f"No spinal cord segment at {level}: below L{_below(protocol)} (from "
                f"{protocol.planning.thecal_sac_from_level} down) the protocol's organ at risk is the thecal sac "
                "(no margin), judged in its own row."
            )
        if dvh is None:
            raise ev.NotEvaluable(why_missing(c.structure))
        try:
            return dvh.metric(c.metric)
        except (DoseError, ValueError) as exc:
            raise ev.NotEvaluable(f"{c.structure} {c.metric}: {exc}") from None

    rows = ev.evaluate(protocol, metric_value, lambda s: s in structures)
    if not rows:
        raise ProtocolError(
            f"Protocol {protocol.id} has no constraint that applies to this case (its rows are all optional and "
            "none of their structures is present): nothing would be checked."
        )
    for r in rows:
        if r.status == ev.NOT_EVALUABLE and r.message not in messages:
            messages.append(r.message)
    messages += _cut_oar_messages(rows, cut_oars)
    problems = _plan_problems(protocol, case) + _contouring_problems(structures)
    matched = {seg for seg in resolution.segment_for_role.values() if seg is not None}
    not_contoured = [s for s in protocol.expected_structures(level) if s not in structures]
    not_evaluated = [n for n in case.masks if n not in matched]
    for r in rows:
        if r.advisory and r.status == ev.FAIL:
            messages.append(
                f"Advisory: {r.structure} {r.metric} = {r.value_text} fails the local default {r.mandatory_text} "
                f"({r.constraint.source}); confirm the limit locally. It does not decide the verdict."
            )
    result = ReviewResult(
        case.name,
        level,
        protocol,
        resolution,
        volumes,
        volume_problems,
        dvhs,
        rows,
        ev.verdict(rows, problems),
        problems + [m for m in messages if m not in problems],
        case,
        problems,
        protocol_deviations(protocol, ptv_margins, prv_margin_mm),
        not_contoured,
        not_evaluated,
        ev.advisory_verdict(rows, not_contoured),
    )
    return result


def _below(protocol: Protocol) -> int:
    """The lumbar number above the thecal-sac level ("below L2" when the sac starts at L3)."""
    return int(protocol.planning.thecal_sac_from_level[1:]) - 1
