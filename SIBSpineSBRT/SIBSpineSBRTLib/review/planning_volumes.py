"""The protocol's planning volumes, by vertebral level: PTV, PTV_Eval and SpinalCord_PRV02.

* PTV = CTV expanded by the protocol's PTV margins (2 mm axial, 5 mm SI in the seed protocol);
* PTV_Eval = PTV minus the spinal canal (C1-L5) or minus the sacral canal and sacral foramina (S1-S5);
* SpinalCord_PRV02 = spinal cord expanded by the PRV margin (2 mm);
* below L2 (from the protocol's thecal-sac level, L3, down) the thecal sac is the organ at risk without
  margin: a missing ThecalSac segment there is warned about. A target spanning levels (T12-L2, L5-S1)
  takes the strictest rule of its range and subtracts every canal structure of the levels spanned.

Each volume records its recipe (sources, margins, level, software version). A volume whose sources are
missing is not built; the reason names the missing structure.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Tuple

from .. import __version__
from ..geometry.margins import Margins, expand
from ..geometry.masks import Mask, union_all
from ..protocol.model import Protocol, is_sacral, level_index, level_span, normalise_level, spans_non_sacral
from ..protocol.roles import RoleResolution, resolve_roles
from ..warnings import ProtocolWarning

PTV, PTV_EVAL, PRV = "PTV", "PTV_Eval", "SpinalCord_PRV02"


@dataclass(frozen=True)
class PlanningVolume:
    name: str
    mask: Mask
    recipe: str  # human-readable, free of ':' and '|' so it can be a segment tag
    sources: Tuple[str, ...]


def ptv_eval_exclusions(level: str) -> Tuple[str, ...]:
    """Structures subtracted from the PTV to make PTV_Eval at this level; a range spanning the lumbosacral
    junction (L5-S1) subtracts every canal structure of the levels spanned."""
    return (("SpinalCanal",) if spans_non_sacral(level) else ()) + (
        ("SacralCanal", "SacralForamina") if is_sacral(level) else ()
    )


def volume_sources(level: str) -> Dict[str, Tuple[str, ...]]:
    """The source structures each planning volume is built from at this level."""
    return {PTV: ("CTV",), PTV_EVAL: ("CTV", *ptv_eval_exclusions(level)), PRV: ("SpinalCord",)}


def thecal_sac_is_oar(protocol: Protocol, level: str) -> bool:
    """True when the whole target (every level of a range) lies at or below the protocol's thecal-sac level:
    the strictest cord rule of a range applies."""
    return level_span(level)[0] >= level_index(protocol.planning.thecal_sac_from_level)


CORD_STRUCTURES = ("SpinalCord", PRV)


def cord_not_applicable(protocol: Protocol, level: str, resolution: RoleResolution) -> bool:
    """True where the cord (and its PRV) do not apply: the whole target at or below the thecal-sac level (L3:
    "below L2", the conus ends around L1-L2) and no cord segment. Above it a missing cord is a missing
    structure, never this; a cord segment present is evaluated at any level."""
    return thecal_sac_is_oar(protocol, level) and resolution.get("SpinalCord") is None


def build_planning_volumes(
    protocol: Protocol,
    masks: Mapping[str, Mask],
    level: str,
    ptv_margins: Optional[Margins] = None,
    prv_margin_mm: Optional[float] = None,
) -> Tuple[Dict[str, PlanningVolume], Dict[str, str]]:
    """Build the planning volumes from ``masks`` (protocol role -> mask, on one grid).

    Returns the volumes built and, for each volume not built, the reason.
    """
    level = normalise_level(level)
    ptv_margins = ptv_margins or Margins(*protocol.planning.ptv_margins_mm)
    prv_margin = protocol.planning.prv_margin_mm if prv_margin_mm is None else float(prv_margin_mm)
    if prv_margin < 0:
        raise ValueError(f"PRV margin must be >= 0 mm; got {prv_margin}.")
    tag = f"level {level}; SIBSpineSBRT {__version__}"
    built: Dict[str, PlanningVolume] = {}
    problems: Dict[str, str] = {}

    ctv = masks.get("CTV")
    if ctv is None or ctv.is_empty:
        problems[PTV] = "PTV needs a CTV segment" + (" (the CTV segment is empty)." if ctv is not None else ".")
    elif ctv.touched_end_slices():
        problems[PTV] = (
            f"the CTV reaches the {' and the '.join(ctv.touched_end_slices())} slice of its grid "
            f"({ctv.geometry.describe()}): it was probably cut by the CT or segmentation extent, and a PTV built "
            "from it would be cut too. Use a CT and segmentation that cover the whole target with margin."
        )
    else:
        ptv = expand(ctv, ptv_margins, PTV)
        if ptv.touched_end_slices():
            problems[PTV] = (
                f"the PTV (CTV + {ptv_margins.describe()}) reaches the {' and the '.join(ptv.touched_end_slices())} "
                f"slice of the grid ({ctv.geometry.describe()}): the grid ends within the margin, so the PTV would "
                "be cut. Use a CT that extends at least the SI margin beyond the target."
            )
        else:
            recipe = f"PTV = CTV + {ptv_margins.describe()} (exact margin); {tag}"
            built[PTV] = PlanningVolume(PTV, ptv, recipe, ("CTV",))

    exclusions = ptv_eval_exclusions(level)
    missing = [e for e in exclusions if masks.get(e) is None]
    if PTV not in built:
        problems[PTV_EVAL] = f"PTV_Eval needs the PTV, which was not built: {problems[PTV]}"
    elif missing:
        problems[PTV_EVAL] = (
            f"PTV_Eval at {level} is PTV minus {' and '.join(exclusions)}; missing segment: {', '.join(missing)}."
        )
    else:
        cut = union_all([masks[e] for e in exclusions])
        ptv_eval = built[PTV].mask.subtract(cut, PTV_EVAL)
        built[PTV_EVAL] = PlanningVolume(
            PTV_EVAL, ptv_eval, f"PTV_Eval = PTV minus {' and '.join(exclusions)}; {tag}", (PTV, *exclusions)
        )

    cord = masks.get("SpinalCord")
    if cord is None and thecal_sac_is_oar(protocol, level):
        pass  # below the conus: no cord, no PRV; the thecal sac is the organ at risk (see cord_not_applicable)
    elif cord is None or cord.is_empty:
        problems[PRV] = "SpinalCord_PRV02 needs a SpinalCord segment" + (" (it is empty)." if cord is not None else ".")
    else:
        prv = expand(cord, Margins.isotropic(prv_margin), PRV)
        built[PRV] = PlanningVolume(
            PRV, prv, f"SpinalCord_PRV02 = SpinalCord + {prv_margin:g} mm (exact margin); {tag}", ("SpinalCord",)
        )

    if thecal_sac_is_oar(protocol, level) and masks.get("ThecalSac") is None:
        warnings.warn(
            f"Level {level} is at or below {protocol.planning.thecal_sac_from_level}: the protocol uses the thecal sac "
            "(cauda equina and nerve roots, no margin) as the organ at risk, but there is no ThecalSac segment.",
            ProtocolWarning,
            stacklevel=2,
        )
    return built, problems


@dataclass
class PlanningOutcome:
    """Planning volumes built for a case, with the reason for each one that could not be built."""

    level: str
    resolution: RoleResolution
    volumes: Dict[str, PlanningVolume]
    problems: Dict[str, str]

    def problem_message(self, protocol: Protocol, name: str) -> str:
        """Why ``name`` was not built, naming any missing source segment and the segments found."""
        unresolved = [r for r in volume_sources(self.level)[name] if self.resolution.get(r) is None]
        return " ".join([self.problems[name], *[self.resolution.missing_message(protocol, r) for r in unresolved]])


def plan_volumes(
    protocol: Protocol,
    masks: Mapping[str, Mask],
    level: str,
    role_overrides: Optional[Mapping[str, str]] = None,
    ptv_margins: Optional[Margins] = None,
    prv_margin_mm: Optional[float] = None,
) -> PlanningOutcome:
    """Resolve the protocol roles among the segments (segment name -> mask) and build the planning volumes."""
    level = normalise_level(level)
    resolution = resolve_roles(protocol, list(masks), role_overrides, masks)
    by_role = {r: masks[s] for r, s in resolution.segment_for_role.items() if s is not None}
    volumes, problems = build_planning_volumes(protocol, by_role, level, ptv_margins, prv_margin_mm)
    return PlanningOutcome(level, resolution, volumes, problems)
