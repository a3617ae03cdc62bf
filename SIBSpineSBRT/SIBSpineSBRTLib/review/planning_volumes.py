"""The protocol's planning volumes, by vertebral level: PTV, PTV_Eval and SpinalCord_PRV02.

* PTV = CTV expanded by the protocol's PTV margins (2 mm axial, 5 mm SI in the seed protocol);
* PTV_Eval = PTV minus the spinal canal (C1-L5) or minus the sacral canal and sacral foramina (S1-S5);
* SpinalCord_PRV02 = spinal cord expanded by the PRV margin (2 mm);
* below L2 (from the protocol's thecal-sac level, L3, down) the thecal sac is the organ at risk without
  margin: a missing ThecalSac segment there is warned about. A target spanning levels (T12-L2, L5-S1)
  takes the strictest rule of its range and subtracts every canal structure of the levels spanned.

Each volume records its recipe (sources, margins, level, software version, and the rule: on the contours or
on the voxel cubes). A volume whose sources are missing is not built; the reason names the missing structure.

One geometry per source (``geometry.margins``, "One geometry per source"): when the source structures come
as planar contours (an RTSTRUCT: ``contours``, keyed like the masks), the volumes are built on the polygons
(``geometry.contour_margins``): each ``PlanningVolume`` then holds ``contours`` (the exact contour structure
the review's DVH uses), ``slice_contours`` (the same sections on the CT slices only: what the RTSTRUCT export
writes) and ``mask`` (those slice contours rasterised on the CT grid as a reader of the RTSTRUCT would, for
display and storage). A labelmap source
keeps the cube rule and holds the mask only. PTV_Eval from a contour PTV and a labelmap canal subtracts the
canal's voxel cubes (as polygons) from the contours, and its recipe says so.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np

from .. import __version__
from ..geometry import contour_margins as cm
from ..geometry.margins import Margins, expand
from ..geometry.masks import Mask, union_all
from ..protocol.model import Protocol, is_sacral, level_index, level_span, normalise_level, spans_non_sacral
from ..protocol.roles import RoleResolution, resolve_roles
from ..warnings import ProtocolWarning

PTV, PTV_EVAL, PRV = "PTV", "PTV_Eval", "SpinalCord_PRV02"


ON_CONTOURS = "exact margin on the contours"
ON_VOXELS = "exact margin on the voxel cubes"


@dataclass(frozen=True)
class PlanningVolume:
    name: str
    mask: Mask  # on the CT grid; for a contour volume, its slice contours rasterised (display and storage)
    recipe: str  # human-readable, free of ':' and '|' so it can be a segment tag
    sources: Tuple[str, ...]
    contours: Optional[object] = None  # the exact ``ContourStructure`` (contour sources): what the DVH uses
    slice_contours: Optional[object] = None  # the same sections on the CT slices only: what an RTSTRUCT holds

    @property
    def structure(self):
        """What the DVH engine evaluates: the contours when the volume was built on contours, else the mask."""
        return self.contours if self.contours is not None else self.mask

    @property
    def volume_cc(self) -> float:
        return float(self.structure.volume_cc)


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


def _contour_frame(geometry, source) -> Tuple[Optional[np.ndarray], Optional[Tuple[float, float]], str]:
    """(plane positions, extent, why not) for growing ``source`` on ``geometry``'s slices: the CT slices'
    positions along the contour normal and the CT's extent; None and the reason when the contours cannot be
    grown there (shapely missing, planes not along the CT slices or oblique)."""
    if not cm.shapely_available():
        return None, None, f"shapely is not installed ({cm.SHAPELY_REQUIREMENT}), so the contours were rasterised first"
    positions = cm.slice_positions(geometry, source.normal)
    if positions is None:
        return None, None, "its contours do not lie in the CT's slices, so they were rasterised first"
    try:
        cm.plane_margins(source, Margins.isotropic(0.0))
    except cm.ContourMarginError:
        return None, None, "its contour planes are oblique, so they were rasterised first"
    gaps = np.diff(positions)
    half = 0.5 * float(np.median(gaps)) if len(gaps) else 0.5 * float(geometry.spacing[2])
    return positions, (float(positions[0] - half), float(positions[-1] + half)), ""


def _grow(name: str, source_mask: Mask, source_contours, margins: Margins):
    """(mask, contours, slice contours, rule note) of ``name`` grown from its source: on the contours when there
    are contours that can be grown on the CT's slices, else by the cube rule on the mask."""
    if source_contours is not None:
        positions, extent, why = _contour_frame(source_mask.geometry, source_contours)
        if positions is not None:
            exact, on_slices = cm.grow_contours(source_contours, margins, positions, extent, name)
            return cm.rasterize(on_slices, source_mask.geometry, name), exact, on_slices, ON_CONTOURS
        warnings.warn(
            f"{name}: {source_contours.name} comes as contours but {why}: {name} is grown by the cube rule on the "
            "voxels.",
            ProtocolWarning,
            stacklevel=3,
        )
        return expand(source_mask, margins, name), None, None, f"{ON_VOXELS}, {why}"
    return expand(source_mask, margins, name), None, None, ON_VOXELS


def _cut_as_contours(ptv: PlanningVolume, masks: Mapping[str, Mask], contours: Mapping[str, object], exclusions):
    """The canal structures as contour structures on the PTV's planes (their own contours, or their voxel cubes
    as polygons), with how each one came; None when one cannot be (planes not parallel)."""
    cuts, notes = [], []
    for e in exclusions:
        c = contours.get(e)
        if c is not None and cm.same_normal(c, ptv.contours):
            cuts.append(c)
            notes.append(e)
            continue
        converted = cm.mask_to_contours(masks[e], ptv.contours.normal)
        if converted is None:
            return None, None
        cuts.append(converted)
        notes.append(f"{e} (its voxel cubes)")
    return cuts, notes


def build_planning_volumes(
    protocol: Protocol,
    masks: Mapping[str, Mask],
    level: str,
    ptv_margins: Optional[Margins] = None,
    prv_margin_mm: Optional[float] = None,
    contours: Optional[Mapping[str, object]] = None,
) -> Tuple[Dict[str, PlanningVolume], Dict[str, str]]:
    """Build the planning volumes from ``masks`` (protocol role -> mask, on one grid) and, for the roles that
    come as planar contours, ``contours`` (role -> ``ContourStructure``): see the module docstring.

    Returns the volumes built and, for each volume not built, the reason.
    """
    level = normalise_level(level)
    contours = dict(contours or {})
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
        ptv, exact, on_slices, rule = _grow(PTV, ctv, contours.get("CTV"), ptv_margins)
        if ptv.touched_end_slices():
            problems[PTV] = (
                f"the PTV (CTV + {ptv_margins.describe()}) reaches the {' and the '.join(ptv.touched_end_slices())} "
                f"slice of the grid ({ctv.geometry.describe()}): the grid ends within the margin, so the PTV would "
                "be cut. Use a CT that extends at least the SI margin beyond the target."
            )
        else:
            recipe = f"PTV = CTV + {ptv_margins.describe()} ({rule}); {tag}"
            built[PTV] = PlanningVolume(PTV, ptv, recipe, ("CTV",), exact, on_slices)

    exclusions = ptv_eval_exclusions(level)
    missing = [e for e in exclusions if masks.get(e) is None]
    if PTV not in built:
        problems[PTV_EVAL] = f"PTV_Eval needs the PTV, which was not built: {problems[PTV]}"
    elif missing:
        problems[PTV_EVAL] = (
            f"PTV_Eval at {level} is PTV minus {' and '.join(exclusions)}; missing segment: {', '.join(missing)}."
        )
    else:
        ptv = built[PTV]
        cuts, notes = (None, None)
        if ptv.contours is not None:
            cuts, notes = _cut_as_contours(ptv, masks, contours, exclusions)
        if cuts is not None:
            exact = cm.subtract_contours(ptv.contours, cuts, PTV_EVAL)
            on_slices = cm.subtract_contours(ptv.slice_contours, cuts, PTV_EVAL)
            mask = cm.rasterize(on_slices, ptv.mask.geometry, PTV_EVAL)
            recipe = f"PTV_Eval = PTV minus {' and '.join(notes)} (on the contours); {tag}"
            built[PTV_EVAL] = PlanningVolume(PTV_EVAL, mask, recipe, (PTV, *exclusions), exact, on_slices)
        else:
            cut = union_all([masks[e] for e in exclusions])
            ptv_eval = ptv.mask.subtract(cut, PTV_EVAL)
            how = " (on the voxels)" if ptv.contours is None else " (on the voxels of the PTV's contours rasterised)"
            built[PTV_EVAL] = PlanningVolume(
                PTV_EVAL, ptv_eval, f"PTV_Eval = PTV minus {' and '.join(exclusions)}{how}; {tag}", (PTV, *exclusions)
            )

    cord = masks.get("SpinalCord")
    if cord is None and thecal_sac_is_oar(protocol, level):
        pass  # below the conus: no cord, no PRV; the thecal sac is the organ at risk (see cord_not_applicable)
    elif cord is None or cord.is_empty:
        problems[PRV] = "SpinalCord_PRV02 needs a SpinalCord segment" + (" (it is empty)." if cord is not None else ".")
    else:
        prv, exact, on_slices, rule = _grow(PRV, cord, contours.get("SpinalCord"), Margins.isotropic(prv_margin))
        built[PRV] = PlanningVolume(
            PRV,
            prv,
            f"SpinalCord_PRV02 = SpinalCord + {prv_margin:g} mm ({rule}); {tag}",
            ("SpinalCord",),
            exact,
            on_slices,
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
    contours: Optional[Mapping[str, object]] = None,
) -> PlanningOutcome:
    """Resolve the protocol roles among the segments (segment name -> mask) and build the planning volumes;
    ``contours`` (segment name -> ``ContourStructure``) are the segments that come as planar contours."""
    level = normalise_level(level)
    contours = contours or {}
    resolution = resolve_roles(protocol, list(masks), role_overrides, masks)
    by_role = {r: masks[s] for r, s in resolution.segment_for_role.items() if s is not None}
    contours_by_role = {r: contours[s] for r, s in resolution.segment_for_role.items() if s in contours}
    volumes, problems = build_planning_volumes(protocol, by_role, level, ptv_margins, prv_margin_mm, contours_by_role)
    return PlanningOutcome(level, resolution, volumes, problems)


def contour_structures(rois: Mapping[str, object], keys) -> Tuple[Dict[str, object], List[str]]:
    """Segment key -> ``ContourStructure`` for the ROIs (key -> ``caseio.rtstruct_read.RoiContours``) among
    ``keys`` that have closed planar contours, built as ``sibspine dvh --rtstruct`` builds them (slabs with
    half-slice end caps), and the messages for those that cannot be (their labelmap is used)."""
    from ..dose.contours import ContourError

    out: Dict[str, object] = {}
    messages: List[str] = []
    for key, roi in rois.items():
        if key not in keys or not roi.closed_planar():
            continue
        try:
            out[key] = roi.to_contour_structure()
        except ContourError as exc:
            messages.append(f"{exc} Its labelmap on the CT grid is used instead of its contours.")
    return out, messages
