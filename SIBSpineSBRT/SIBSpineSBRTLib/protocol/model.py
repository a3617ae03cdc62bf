"""Protocols: prescription, planning-volume recipe, structure roles and two-level dose limits.

A protocol file is JSON (``Resources/Protocols/*.json``, format "sibspine-protocol/1"); ``load_protocol``
validates it and names the file and field of any mistake. Limits are stored in the unit of their metric
(Gy for D metrics, cc or % for V metrics); a file may give a dose limit in percent of the prescription
("unit": "%Rx"), which is converted to Gy on loading.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

from ..dose.dvh import parse_metric

PROTOCOL_FORMAT = "sibspine-protocol/1"
PROTOCOL_DIR = Path(__file__).resolve().parents[2] / "Resources" / "Protocols"
DEFAULT_PROTOCOL = "mitsuyoshi2025"

LEVELS = tuple(
    [f"C{n}" for n in range(1, 8)]
    + [f"T{n}" for n in range(1, 13)]
    + [f"L{n}" for n in range(1, 6)]
    + [f"S{n}" for n in range(1, 6)]
)


class ProtocolError(ValueError):
    """A protocol file or a protocol request that is not valid."""


def normalise_level(level: str) -> str:
    """'t8' -> 'T8'; refuses anything that is not C1-C7, T1-T12, L1-L5 or S1-S5."""
    text = str(level).strip().upper()
    if text not in LEVELS:
        raise ProtocolError(f"Vertebral level '{level}' is not one of C1-C7, T1-T12, L1-L5, S1-S5.")
    return text


def level_index(level: str) -> int:
    return LEVELS.index(normalise_level(level))


def is_sacral(level: str) -> bool:
    return normalise_level(level).startswith("S")


def level_from_text(text: str) -> Optional[str]:
    """A level written explicitly as "level T8" (e.g. in an RTPLAN label), else None: never a guess."""
    m = re.search(r"\blevel[\s:=]+([CTLS]\d{1,2})\b", str(text or ""), re.IGNORECASE)
    if not m or m.group(1).upper() not in LEVELS:
        return None
    return m.group(1).upper()


def prescription_mismatch(protocol: Protocol, total_gy: Optional[float], fractions: Optional[int]) -> Optional[str]:
    """A sentence when a plan's prescription differs from the protocol's (the review still uses the protocol)."""
    parts = []
    if fractions is not None and fractions != protocol.fractions:
        parts.append(f"{fractions} fractions instead of {protocol.fractions}")
    if total_gy is not None and abs(total_gy - protocol.prescription_gy) > 0.01:
        parts.append(f"{total_gy:g} Gy instead of {protocol.prescription_gy:g} Gy")
    if not parts:
        return None
    return f"The RTPLAN prescribes {' and '.join(parts)}; the limits judged are those of protocol {protocol.id}."


def name_key(name: str) -> str:
    """Comparison key for structure names: case-insensitive, ignoring spaces, '_' and '-'."""
    return re.sub(r"[\s_\-]+", "", str(name)).casefold()


@dataclass(frozen=True)
class Limit:
    """An interval a metric must lie in: ``lower <= value <= upper`` (either side may be open), or
    ``target +- tolerance`` when the protocol states a single value."""

    lower: Optional[float] = None
    upper: Optional[float] = None
    target: Optional[float] = None
    tolerance: Optional[float] = None

    def is_met(self, value: float) -> bool:
        if self.target is not None:
            return abs(value - self.target) <= (self.tolerance or 0.0) + 1e-12
        if self.lower is not None and value < self.lower:
            return False
        if self.upper is not None and value > self.upper:
            return False
        return True

    def describe(self, unit: str) -> str:
        def fmt(v: float) -> str:
            return f"{v:g}"

        u = "%" if unit == "%" else f" {unit}"
        if self.target is not None:
            return f"{fmt(self.target)}{u} ± {fmt(self.tolerance or 0.0)}"
        parts = []
        if self.lower is not None:
            parts.append(f">= {fmt(self.lower)}")
        if self.upper is not None:
            parts.append(f"<= {fmt(self.upper)}")
        return " and ".join(parts) + u

    @classmethod
    def from_json(cls, data: dict, where: str, scale: float = 1.0) -> Limit:
        if not isinstance(data, dict):
            raise ProtocolError(f'{where}: a limit is an object such as {{"max": 25}}; got {data!r}.')
        unknown = set(data) - {"min", "max", "equals", "tolerance"}
        if unknown:
            raise ProtocolError(f"{where}: unknown limit keys {sorted(unknown)} (use min, max, equals, tolerance).")
        for k, v in data.items():
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                raise ProtocolError(f"{where}.{k}: must be a number; got {v!r}.")
        if "equals" in data:
            if "min" in data or "max" in data:
                raise ProtocolError(f"{where}: give either equals (+ tolerance) or min/max, not both.")
            return cls(target=data["equals"] * scale, tolerance=data.get("tolerance", 0.0) * scale)
        if "tolerance" in data:
            raise ProtocolError(f"{where}: tolerance only goes with equals.")
        if "min" not in data and "max" not in data:
            raise ProtocolError(f"{where}: a limit needs min, max or equals.")
        lo = data.get("min")
        hi = data.get("max")
        if lo is not None and hi is not None and lo > hi:
            raise ProtocolError(f"{where}: min {lo} is above max {hi}.")
        return cls(lower=None if lo is None else lo * scale, upper=None if hi is None else hi * scale)


@dataclass(frozen=True)
class Constraint:
    """One row of the protocol: a metric of a structure judged against an optimal and a mandatory limit."""

    structure: str  # protocol structure name (a role)
    metric: str  # e.g. "D2%", "D0.03cc", "V30Gy"
    unit: str  # "Gy", "cc" or "%"
    optimal: Optional[Limit]
    mandatory: Optional[Limit]
    priority: int = 1
    source: str = ""
    confirmed: bool = True  # False: a literature default a clinic must confirm
    note: str = ""
    required: bool = True  # required rows are always reported; optional ones only when the structure exists

    @property
    def key(self) -> Tuple[str, str]:
        return self.structure, self.metric


@dataclass(frozen=True)
class StructureRole:
    """A structure the protocol refers to, with the names it may carry in a segmentation."""

    name: str
    aliases: Tuple[str, ...] = ()
    kind: str = "oar"  # "target", "oar" or "reference"
    alpha_beta_gy: Optional[float] = None
    color: Tuple[float, float, float] = (0.5, 0.5, 0.5)
    derived: bool = False

    def matches(self, segment_name: str) -> bool:
        key = name_key(segment_name)
        return key == name_key(self.name) or key in {name_key(a) for a in self.aliases}


@dataclass(frozen=True)
class PlanningSpec:
    """How the planning volumes are built (all margins in mm)."""

    ptv_margins_mm: Tuple[float, float, float, float, float, float]  # R, L, A, P, S, I
    prv_margin_mm: float
    thecal_sac_from_level: str  # levels at or below this use the thecal sac without margin


@dataclass(frozen=True)
class Protocol:
    id: str
    name: str
    citation: str
    fractions: int
    prescription_gy: float
    prescription_structure: str
    prescription_metric: str
    planning: PlanningSpec
    structures: Dict[str, StructureRole]
    constraints: Tuple[Constraint, ...]
    path: str = ""
    notes: Tuple[str, ...] = field(default_factory=tuple)

    def role(self, name: str) -> StructureRole:
        if name not in self.structures:
            raise ProtocolError(f"Protocol {self.id} has no structure {name}.")
        return self.structures[name]

    @property
    def required_constraints(self) -> List[Constraint]:
        return [c for c in self.constraints if c.required]


# -- loading ------------------------------------------------------------------------------------------


def available_protocols() -> Dict[str, Path]:
    return {p.stem: p for p in sorted(PROTOCOL_DIR.glob("*.json"))}


def load_protocol(name_or_path: Union[str, Path, None] = None) -> Protocol:
    """Load a shipped protocol by id (file stem) or any protocol file by path; validate it."""
    ref = DEFAULT_PROTOCOL if name_or_path is None else str(name_or_path)
    shipped = available_protocols()
    path = shipped.get(ref) or Path(ref)
    if not path.is_file():
        raise ProtocolError(
            f"Protocol '{ref}' is neither a shipped protocol ({', '.join(shipped) or 'none'}) nor a file."
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"Protocol file {path} is not valid JSON: {exc}") from None
    return parse_protocol(data, str(path))


def _req(data: dict, key: str, kind, where: str):
    if key not in data:
        raise ProtocolError(f"{where}: missing '{key}'.")
    value = data[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise ProtocolError(f"{where}.{key}: expected {' or '.join(k.__name__ for k in kinds)}; got {value!r}.")
    return value


def parse_protocol(data: dict, where: str = "protocol") -> Protocol:
    if not isinstance(data, dict):
        raise ProtocolError(f"{where}: the file must hold a JSON object.")
    fmt = data.get("format")
    if fmt != PROTOCOL_FORMAT:
        raise ProtocolError(f"{where}: 'format' must be \"{PROTOCOL_FORMAT}\"; got {fmt!r}.")
    rx = _req(data, "prescription", dict, where)
    rx_gy = float(_req(rx, "dose_gy", (int, float), f"{where}.prescription"))
    if rx_gy <= 0:
        raise ProtocolError(f"{where}.prescription.dose_gy must be > 0.")
    fractions = _req(data, "fractions", int, where)
    if fractions < 1:
        raise ProtocolError(f"{where}.fractions must be >= 1.")

    structures: Dict[str, StructureRole] = {}
    for name, s in _req(data, "structures", dict, where).items():
        w = f"{where}.structures.{name}"
        if not isinstance(s, dict):
            raise ProtocolError(f"{w}: expected an object.")
        kind = s.get("kind", "oar")
        if kind not in ("target", "oar", "reference"):
            raise ProtocolError(f"{w}.kind must be target, oar or reference; got {kind!r}.")
        color = tuple(float(c) for c in s.get("color", (0.5, 0.5, 0.5)))
        if len(color) != 3 or not all(0 <= c <= 1 for c in color):
            raise ProtocolError(f"{w}.color must be three numbers in 0..1.")
        ab = s.get("alpha_beta_gy")
        structures[name] = StructureRole(
            name,
            tuple(s.get("aliases", ())),
            kind,
            None if ab is None else float(ab),
            color,
            bool(s.get("derived", False)),
        )

    plan = _req(data, "planning", dict, where)
    m = _req(plan, "ptv_margin_mm", dict, f"{where}.planning")
    try:
        ptv = tuple(float(m[k]) for k in ("R", "L", "A", "P", "S", "I"))
    except (KeyError, TypeError, ValueError):
        raise ProtocolError(f"{where}.planning.ptv_margin_mm needs numbers R, L, A, P, S, I (mm).") from None
    planning = PlanningSpec(
        ptv,
        float(_req(plan, "prv_margin_mm", (int, float), f"{where}.planning")),
        normalise_level(_req(plan, "thecal_sac_from_level", str, f"{where}.planning")),
    )

    constraints = []
    seen = set()
    for n, c in enumerate(_req(data, "constraints", list, where)):
        w = f"{where}.constraints[{n}]"
        if not isinstance(c, dict):
            raise ProtocolError(f"{w}: expected an object.")
        structure = _req(c, "structure", str, w)
        if structure not in structures:
            raise ProtocolError(f"{w}.structure '{structure}' is not declared under 'structures'.")
        metric = _req(c, "metric", str, w)
        try:
            spec = parse_metric(metric)
        except ValueError as exc:
            raise ProtocolError(f"{w}.metric: {exc}") from None
        unit = c.get("unit", spec.unit)
        scale = 1.0
        if unit == "%Rx":
            if spec.unit != "Gy":
                raise ProtocolError(f"{w}: unit %Rx (percent of prescription) only applies to dose metrics.")
            unit, scale = "Gy", rx_gy / 100.0
        if unit != spec.unit:
            raise ProtocolError(f"{w}: metric {metric} is in {spec.unit}, but the limit unit is {unit!r}.")
        optimal = Limit.from_json(c["optimal"], f"{w}.optimal", scale) if c.get("optimal") is not None else None
        mandatory = Limit.from_json(c["mandatory"], f"{w}.mandatory", scale) if c.get("mandatory") is not None else None
        if optimal is None and mandatory is None:
            raise ProtocolError(f"{w}: a constraint needs an optimal or a mandatory limit.")
        if (structure, metric) in seen:
            raise ProtocolError(f"{w}: {structure} {metric} appears twice.")
        seen.add((structure, metric))
        constraints.append(
            Constraint(
                structure,
                metric,
                unit,
                optimal,
                mandatory,
                int(c.get("priority", 1)),
                str(c.get("source", "")),
                bool(c.get("confirmed", True)),
                str(c.get("note", "")),
                bool(c.get("required", True)),
            )
        )
    target = _req(rx, "structure", str, f"{where}.prescription")
    if target not in structures:
        raise ProtocolError(f"{where}.prescription.structure '{target}' is not declared under 'structures'.")
    rx_metric = _req(rx, "metric", str, f"{where}.prescription")
    parse_metric(rx_metric)
    return Protocol(
        id=str(_req(data, "id", str, where)),
        name=str(_req(data, "name", str, where)),
        citation=str(data.get("citation", "")),
        fractions=fractions,
        prescription_gy=rx_gy,
        prescription_structure=target,
        prescription_metric=rx_metric,
        planning=planning,
        structures=structures,
        constraints=tuple(constraints),
        path=where,
        notes=tuple(data.get("notes", ())),
    )
