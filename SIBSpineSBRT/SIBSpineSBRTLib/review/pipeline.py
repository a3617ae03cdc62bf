"""The plan review: segments and dose in, planning volumes, DVHs, judged constraints and a verdict out.

Pure numpy on Masks and a DoseGrid; the MRML adapters feed it and store what it returns. Every front end
(Slicer module, CLI, web demo) calls ``review_case``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional

from ..dose.dvh import DVH, compute_dvh
from ..dose.grid import DoseError, DoseGrid
from ..geometry.margins import Margins
from ..geometry.masks import Mask
from ..protocol import evaluate as ev
from ..protocol.model import Constraint, Protocol, normalise_level
from ..protocol.roles import RoleResolution
from .planning_volumes import CORD_STRUCTURES, PlanningVolume, cord_not_applicable, plan_volumes


@dataclass
class CaseInput:
    """What a review needs: segment masks by segment name (all on one grid) and a dose."""

    name: str
    level: str
    masks: Dict[str, Mask]
    dose: Optional[DoseGrid] = None
    dose_problem: str = ""  # why there is no dose, when there is none


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

    def dvh_curves(self, step_gy: float = 0.1) -> Dict[str, tuple]:
        """Cumulative DVHs (dose Gy, volume %) of the structures the protocol evaluates (with the cord), in
        protocol order: what every DVH plot shows (CTV and PTV are construction steps, not shown)."""
        shown = {c.structure for c in self.protocol.constraints} | {"SpinalCord"}
        return {n: self.dvhs[n].curve(step_gy) for n in self.protocol.structures if n in self.dvhs and n in shown}

    @property
    def missing_roles(self) -> List[str]:
        needed = {c.structure for c in self.protocol.required_constraints}
        return [r for r, seg in self.resolution.segment_for_role.items() if seg is None and r in needed]


def structure_masks(
    resolution: RoleResolution, masks: Mapping[str, Mask], volumes: Mapping[str, PlanningVolume]
) -> Dict[str, Mask]:
    """Protocol structure -> mask, from the resolved source segments and the built planning volumes."""
    out = {role: masks[seg].renamed(role) for role, seg in resolution.segment_for_role.items() if seg is not None}
    out.update({name: v.mask for name, v in volumes.items()})
    return out


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
        planned = plan_volumes(protocol, case.masks, level, role_overrides, ptv_margins, prv_margin_mm)
        resolution, volumes, volume_problems = planned.resolution, planned.volumes, planned.problems
        structures = structure_masks(resolution, case.masks, volumes)

        dvhs: Dict[str, DVH] = {}
        dvh_problems: Dict[str, str] = {}
        wanted = {c.structure for c in protocol.constraints} | {
            n for n, s in protocol.structures.items() if s.kind in ("target", "oar")
        }
        for name in sorted(wanted & set(structures)):
            if case.dose is None:
                break
            try:
                dvhs[name] = compute_dvh(structures[name], case.dose)
            except DoseError as exc:
                dvh_problems[name] = str(exc)

    for w in caught:
        messages.append(f"Warning: {w.message}")

    def why_missing(structure: str) -> str:
        if structure in volume_problems:
            return planned.problem_message(protocol, structure)
        if structure in dvh_problems:
            return dvh_problems[structure]
        if structure not in structures:
            return resolution.missing_message(protocol, structure)
        return case.dose_problem or "No dose volume was given."

    def metric_value(c: Constraint) -> float:
        dvh = dvhs.get(c.structure)
        if dvh is None and c.structure in CORD_STRUCTURES and cord_not_applicable(protocol, level, resolution):
            raise ev.NotApplicable(
                f"No spinal cord segment at {level}: from {protocol.planning.thecal_sac_from_level} down the "
                "protocol's organ at risk is the thecal sac (no margin), judged in its own row."
            )
        if dvh is None:
            raise ev.NotEvaluable(why_missing(c.structure))
        try:
            return dvh.metric(c.metric)
        except (DoseError, ValueError) as exc:
            raise ev.NotEvaluable(f"{c.structure} {c.metric}: {exc}") from None

    rows = ev.evaluate(protocol, metric_value, lambda s: s in structures)
    for r in rows:
        if r.status == ev.NOT_EVALUABLE and r.message not in messages:
            messages.append(r.message)
    return ReviewResult(
        case.name, level, protocol, resolution, volumes, volume_problems, dvhs, rows, ev.verdict(rows), messages, case
    )
