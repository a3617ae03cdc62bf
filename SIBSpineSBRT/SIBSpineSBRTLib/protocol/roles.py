"""Which segment plays which protocol role: matched by name and aliases, overridable per role.

Structures are known by a **key**, unique within a case: the structure's name, or, when another structure's
name is the same after trimming and case-folding (``name_key``: case, spaces, '_' and '-' ignored), the name
qualified by where it comes from: ``SpinalCord [ROI 7]`` (RTSTRUCT ROI number) or ``SpinalCord [Segment_3]``
(segment ID). Nothing is ever collapsed by name.

A role that two structures could fill (same name, names equal after folding, a name and an alias) is a
``ProtocolError`` that lists each candidate with its ROI number or segment ID and its volume, and says how
to choose: ``--role ROLE=VALUE`` where VALUE is

* ``ROI:7``            the RTSTRUCT ROI number 7;
* ``ID:Segment_3``     the segment ID Segment_3 (a .seg.nrrd);
* a key or a name      exactly as written (``SpinalCord [ROI 7]``, ``Cord_MR``); a name two structures carry
                       is refused, with the candidates.

Derived structures (PTV, PTV_Eval, SpinalCord_PRV02) are built, never chosen: ``--role`` for them is refused.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from .model import Protocol, ProtocolError, name_key

#: What each derived structure is built from (for the refusal of ``--role`` on it).
DERIVED_FROM = {
    "PTV": ("the CTV", ("CTV",)),
    "PTV_Eval": ("the CTV and the canal", ("CTV", "SpinalCanal", "SacralCanal", "SacralForamina")),
    "SpinalCord_PRV02": ("the spinal cord", ("SpinalCord",)),
}

_ROI_SELECTOR = re.compile(r"\s*ROI\s*:\s*(\d+)\s*", re.IGNORECASE)
_ID_SELECTOR = re.compile(r"\s*ID\s*:\s*(.+?)\s*", re.IGNORECASE)


@dataclass(frozen=True)
class StructureInfo:
    """Where a structure (keyed ``key``) comes from: its name as drawn, its RTSTRUCT ROI number or segment ID,
    and its volume (cc; None when not known)."""

    key: str
    name: str
    roi_number: Optional[int] = None
    segment_id: Optional[str] = None
    volume_cc: Optional[float] = None

    @property
    def selector(self) -> str:
        """What ``--role ROLE=...`` takes to choose exactly this structure."""
        if self.roi_number is not None:
            return f"ROI:{self.roi_number}"
        if self.segment_id:
            return f"ID:{self.segment_id}"
        return self.key

    def describe(self) -> str:
        """``'SpinalCord' (ROI 7, 2.41 cc)``."""
        where = []
        if self.roi_number is not None:
            where.append(f"ROI {self.roi_number}")
        elif self.segment_id:
            where.append(f"segment ID {self.segment_id}")
        where.append("volume unknown" if self.volume_cc is None else f"{self.volume_cc:.2f} cc")
        return f"'{self.name}' ({', '.join(where)})"


class StructureMasks(dict):
    """key -> Mask (or any value), remembering each key's ``StructureInfo`` in ``info`` (ROI number or segment
    ID, name as drawn). What the readers return, so ``resolve_roles`` can name each candidate."""

    def __init__(self, items=(), info: Optional[Mapping[str, StructureInfo]] = None):
        super().__init__(items)
        self.info: Dict[str, StructureInfo] = dict(info or {})


def qualified_key(name: str, roi_number: Optional[int] = None, segment_id: Optional[str] = None) -> str:
    """``SpinalCord [ROI 7]`` or ``SpinalCord [Segment_3]``."""
    return f"{name} [ROI {roi_number}]" if roi_number is not None else f"{name} [{segment_id}]"


def structure_keys(entries: Sequence[Tuple[str, Optional[int], Optional[str]]]) -> List[str]:
    """Unique keys for (name, ROI number or None, segment ID or None) entries, in order: the name when no other
    name folds to it (``name_key``), else ``qualified_key``."""
    groups = Counter(name_key(name) for name, _, _ in entries)
    keys: List[str] = []
    for n, (name, roi, sid) in enumerate(entries):
        if groups[name_key(name)] == 1:
            key = name
        else:
            key = qualified_key(name, roi, sid if sid else (None if roi is not None else f"#{n + 1}"))
        base, k = key, 2
        while key in keys:  # a qualified key that some other structure carries as its own name
            key, k = f"{base} ({k})", k + 1
        keys.append(key)
    return keys


def structure_infos(names: Sequence[str], structures: Optional[Mapping[str, object]] = None) -> List[StructureInfo]:
    """A StructureInfo per name (aligned with ``names``): from ``structures`` when it holds StructureInfo values
    or is a ``StructureMasks``, with the volume from its values' ``volume_cc`` when they have one."""
    table = getattr(structures, "info", None) or {}
    out = []
    for name in names:
        value = structures.get(name) if structures is not None else None
        info = value if isinstance(value, StructureInfo) else table.get(name)
        if info is None:
            info = StructureInfo(name, name)
        elif info.key != name:
            info = replace(info, key=name)
        out.append(info)
    return out


def _with_volume(info: StructureInfo, structures: Optional[Mapping[str, object]]) -> StructureInfo:
    if info.volume_cc is not None or structures is None:
        return info
    volume = getattr(structures.get(info.key), "volume_cc", None)
    return replace(info, volume_cc=float(volume)) if volume is not None else info


@dataclass
class RoleResolution:
    """Segment (key) found for each protocol structure (None: not found)."""

    segment_for_role: Dict[str, Optional[str]]
    segment_names: List[str]
    overridden: Dict[str, str] = field(default_factory=dict)  # role -> key chosen with --role
    structures: Dict[str, StructureInfo] = field(default_factory=dict)

    def get(self, role: str) -> Optional[str]:
        return self.segment_for_role.get(role)

    def missing_message(self, protocol: Protocol, role: str) -> str:
        spec = protocol.role(role)
        looked = ", ".join([spec.name, *spec.aliases])
        found = ", ".join(self.segment_names) or "none"
        return (
            f"No segment for {role} (looked for: {looked}; case-insensitive, ignoring spaces, '_' and '-'). "
            f"Segments found: {found}. Name the segment {role} or map it with --role {role}=NAME."
        )


def _candidates(hits: Sequence[StructureInfo], structures) -> str:
    return "; ".join(_with_volume(h, structures).describe() for h in hits)


def _fixes(role: str, hits: Sequence[StructureInfo]) -> str:
    selectors = [h.selector for h in hits]
    if len(set(selectors)) < len(selectors):  # plain names with no ROI number or segment ID to tell them apart
        return f"rename all but one of them so that one structure is the {role}"
    return " or ".join(f"--role {role}={s}" for s in selectors)


def _derived_refusal(protocol: Protocol, role: str, value: str) -> ProtocolError:
    what, sources = DERIVED_FROM.get(role, ("other structures", ()))
    sources = [s for s in sources if s in protocol.structures]
    hint = ", ".join(f"--role {s}=NAME" for s in sources) or "--role for its sources"
    return ProtocolError(
        f"--role {role}={value}: {role} is built by SIBSpineSBRT from {what}; it cannot be chosen from the case's "
        f"segments. Choose its sources instead ({hint}), and leave out --role {role}."
    )


def _choose(
    role: str, value: str, infos: Sequence[StructureInfo], structures: Optional[Mapping[str, object]]
) -> StructureInfo:
    """The structure ``--role role=value`` names (see the module doc), or a ProtocolError."""
    listing = ", ".join(i.key for i in infos) or "none"
    by_key = [i for i in infos if i.key == value]
    if len(by_key) == 1:
        return by_key[0]
    m = _ROI_SELECTOR.fullmatch(value)
    if m:
        hits = [i for i in infos if i.roi_number == int(m.group(1))]
        if len(hits) == 1:
            return hits[0]
        numbers = ", ".join(f"{i.roi_number} ({i.name})" for i in infos if i.roi_number is not None) or "none"
        raise ProtocolError(f"--role {role}={value}: there is no ROI number {m.group(1)} (ROI numbers: {numbers}).")
    m = _ID_SELECTOR.fullmatch(value)
    if m:
        hits = [i for i in infos if i.segment_id == m.group(1)]
        if len(hits) == 1:
            return hits[0]
        ids = ", ".join(f"{i.segment_id} ({i.name})" for i in infos if i.segment_id) or "none"
        raise ProtocolError(f"--role {role}={value}: there is no segment with ID {m.group(1)} (segment IDs: {ids}).")
    hits = by_key or [i for i in infos if i.name == value]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise ProtocolError(
            f"--role {role}={value}: {len(hits)} structures are named {value}: {_candidates(hits, structures)}. "
            f"Choose one with {_fixes(role, hits)}."
        )
    raise ProtocolError(
        f"--role {role}={value}: there is no segment named {value} (segments: {listing}). Give a segment name, "
        "ROI:<ROI number> or ID:<segment ID>."
    )


def resolve_roles(
    protocol: Protocol,
    segment_names: Sequence[str],
    overrides: Optional[Mapping[str, str]] = None,
    structures: Optional[Mapping[str, object]] = None,
) -> RoleResolution:
    """Match segments (by key) to the protocol's source structures (derived ones are built, not looked up).

    ``structures`` (optional) maps key -> ``StructureInfo``, or is a ``StructureMasks`` (key -> Mask with the
    info): it tells each key's name as drawn, ROI number or segment ID and volume; without it a key is its name.
    ``overrides`` maps role -> a segment (name, key, ``ROI:n`` or ``ID:segment``) and wins over name matching
    for that role (a segment may serve several roles when the user says so). Two segments that could fill one
    role is an error naming each candidate and the ``--role`` that chooses it, never a guess; so is ``--role``
    for an unknown or a derived structure, or for a segment that does not exist or is not unique.
    """
    names = list(segment_names)
    infos = structure_infos(names, structures)
    chosen: Dict[str, str] = {}
    for role, value in dict(overrides or {}).items():
        if role not in protocol.structures:
            raise ProtocolError(
                f"--role {role}={value}: {role} is not a structure of protocol {protocol.id} "
                f"({', '.join(protocol.structures)})."
            )
        if protocol.structures[role].derived:
            raise _derived_refusal(protocol, role, value)
        chosen[role] = _choose(role, str(value), infos, structures).key
    result: Dict[str, Optional[str]] = {}
    for role, spec in protocol.structures.items():
        if spec.derived:
            continue
        if role in chosen:
            result[role] = chosen[role]
            continue
        hits = [i for i in infos if spec.matches(i.name)]
        if len(hits) > 1:
            looked = ", ".join([spec.name, *spec.aliases])
            raise ProtocolError(
                f"{len(hits)} structures could be the {role} (names {looked}; case, spaces, '_' and '-' ignored): "
                f"{_candidates(hits, structures)}. SIBSpineSBRT does not guess: choose one with "
                f"{_fixes(role, hits)}, or rename or delete the others in the planning system."
            )
        result[role] = hits[0].key if hits else None
    return RoleResolution(result, names, chosen, {i.key: i for i in infos})


def role_choices(
    protocol: Protocol,
    segment_names: Sequence[str],
    overrides: Optional[Mapping[str, str]] = None,
    structures: Optional[Mapping[str, object]] = None,
) -> List[Tuple[str, Optional[str], List[str]]]:
    """Rows of a role table: (role, segment chosen or None, every segment name), in protocol order. Listed:
    the roles Table-1 limits and the planning volumes need, and other organs at risk when a segment matches."""
    resolution = resolve_roles(protocol, segment_names, overrides, structures)
    essential = {c.structure for c in protocol.required_constraints}
    essential |= {"CTV", "SpinalCord", "SpinalCanal", "SacralCanal", "SacralForamina"}
    rows = []
    for role, spec in protocol.structures.items():
        if spec.derived or spec.kind == "reference" and role not in essential:
            continue
        if role in essential or resolution.get(role) is not None:
            rows.append((role, resolution.get(role), list(segment_names)))
    return rows
