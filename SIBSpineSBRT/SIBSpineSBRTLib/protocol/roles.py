"""Which segment plays which protocol role: matched by name and aliases, overridable per role."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from .model import Protocol, ProtocolError


@dataclass
class RoleResolution:
    """Segment name found for each protocol structure (None: not found)."""

    segment_for_role: Dict[str, Optional[str]]
    segment_names: List[str]
    overridden: Dict[str, str] = field(default_factory=dict)

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


def resolve_roles(
    protocol: Protocol, segment_names: Sequence[str], overrides: Optional[Mapping[str, str]] = None
) -> RoleResolution:
    """Match segments to the protocol's source structures (derived ones are built, not looked up).

    ``overrides`` maps role -> segment name and wins over name matching for that role (a segment may serve
    several roles when the user says so). Two segments matching one role is an error naming both, never a guess.
    """
    names = list(segment_names)
    overrides = dict(overrides or {})
    for role, seg in overrides.items():
        if role not in protocol.structures:
            raise ProtocolError(
                f"--role {role}={seg}: {role} is not a structure of protocol {protocol.id} "
                f"({', '.join(protocol.structures)})."
            )
        if seg not in names:
            raise ProtocolError(f"--role {role}={seg}: there is no segment named {seg} (segments: {', '.join(names)}).")
    result: Dict[str, Optional[str]] = {}
    for role, spec in protocol.structures.items():
        if spec.derived:
            continue
        if role in overrides:
            result[role] = overrides[role]
            continue
        hits = [n for n in names if spec.matches(n)]
        if len(hits) > 1:
            raise ProtocolError(f"Segments {', '.join(hits)} all match {role}; say which one with --role {role}=NAME.")
        result[role] = hits[0] if hits else None
    return RoleResolution(result, names, overrides)


def role_choices(
    protocol: Protocol, segment_names: Sequence[str], overrides: Optional[Mapping[str, str]] = None
) -> List[Tuple[str, Optional[str], List[str]]]:
    """Rows of a role table: (role, segment chosen or None, every segment name), in protocol order. Listed:
    the roles Table-1 limits and the planning volumes need, and other organs at risk when a segment matches."""
    resolution = resolve_roles(protocol, segment_names, overrides)
    essential = {c.structure for c in protocol.required_constraints}
    essential |= {"CTV", "SpinalCord", "SpinalCanal", "SacralCanal", "SacralForamina"}
    rows = []
    for role, spec in protocol.structures.items():
        if spec.derived or spec.kind == "reference" and role not in essential:
            continue
        if role in essential or resolution.get(role) is not None:
            rows.append((role, resolution.get(role), list(segment_names)))
    return rows
