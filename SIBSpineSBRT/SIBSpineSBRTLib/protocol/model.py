"""Protocols: prescription, planning-volume recipe, structure roles and two-level dose limits.

A protocol file is JSON (``Resources/Protocols/*.json``, format "sibspine-protocol/1"); ``load_protocol``
validates it and names the file and field of any mistake. Limits are stored in the unit of their metric
(Gy for D metrics, cc or % for V metrics); a file may give a dose limit in percent of the prescription
("unit": "%Rx"), which is converted to Gy on loading.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

from ..dose.dvh import parse_metric

PROTOCOL_FORMAT = "sibspine-protocol/1"
PROTOCOL_DIR = Path(__file__).resolve().parents[2] / "Resources" / "Protocols"
#: sha256 of each shipped protocol's parsed content ("<sha256>  <id>" lines): an edited copy is a deviation.
SHIPPED_CHECKSUMS = PROTOCOL_DIR / "SHA256SUMS"
DEFAULT_PROTOCOL = "mitsuyoshi2025"

LEVELS = tuple(
    [f"C{n}" for n in range(1, 8)]
    + [f"T{n}" for n in range(1, 13)]
    + [f"L{n}" for n in range(1, 6)]
    + [f"S{n}" for n in range(1, 6)]
)


class ProtocolError(ValueError):
    """A protocol file or a protocol request that is not valid."""


def _one_level(text: str, given) -> str:
    if text not in LEVELS:
        raise ProtocolError(
            f"Vertebral level '{given}' is not one of C1-C7, T1-T12, L1-L5, S1-S5 (or a range such as T12-L2 or L5-S1)."
        )
    return text


def normalise_level(level: str) -> str:
    """'t8' -> 'T8', 't12-l2' -> 'T12-L2' (a target spanning levels, cranial first); refuses anything else."""
    text = re.sub(r"\s+", "", str(level)).upper().replace("\u2013", "-")
    parts = text.split("-")
    if len(parts) == 1:
        return _one_level(parts[0], level)
    if len(parts) != 2:
        raise ProtocolError(f"Vertebral level '{level}': give one level (T8) or a range of two (T12-L2).")
    first, last = (_one_level(p, level) for p in parts)
    if LEVELS.index(first) > LEVELS.index(last):
        first, last = last, first
    return first if first == last else f"{first}-{last}"


def level_choices(max_levels: int = 3) -> Tuple[str, ...]:
    """Single levels, then ranges of up to ``max_levels`` adjacent levels (T12-L1, T11-L1, L5-S1): what a
    level selector offers."""
    ranges = [f"{LEVELS[i]}-{LEVELS[i + n - 1]}" for n in range(2, max_levels + 1) for i in range(len(LEVELS) - n + 1)]
    return LEVELS + tuple(ranges)


def level_span(level: str) -> Tuple[int, int]:
    """Indices (in LEVELS) of the most cranial and the most caudal level of a level or range."""
    parts = normalise_level(level).split("-")
    return LEVELS.index(parts[0]), LEVELS.index(parts[-1])


def level_index(level: str) -> int:
    """Index of a single level (the most caudal one of a range)."""
    return level_span(level)[1]


def levels_in(level: str) -> Tuple[str, ...]:
    lo, hi = level_span(level)
    return LEVELS[lo : hi + 1]


def is_sacral(level: str) -> bool:
    """True when the level (or any level of the range) is sacral."""
    return any(v.startswith("S") for v in levels_in(level))


def spans_non_sacral(level: str) -> bool:
    return any(not v.startswith("S") for v in levels_in(level))


def level_from_text(text: str) -> Optional[str]:
    """A level written explicitly as "level T8" (e.g. in an RTPLAN label), else None: never a guess."""
    m = re.search(r"\blevels?[\s:=]+([CTLS]\d{1,2}(?:\s*[-\u2013]\s*[CTLS]\d{1,2})?)\b", str(text or ""), re.IGNORECASE)
    if not m:
        return None
    try:
        return normalise_level(m.group(1))
    except ProtocolError:
        return None


def name_key(name: str) -> str:
    """Comparison key for structure names: case-insensitive, ignoring spaces, '_' and '-'."""
    return re.sub(r"[\s_\-]+", "", str(name)).casefold()


def round_to_precision(value: float, precision: float) -> float:
    """``value`` rounded half up to a multiple of ``precision`` (0.1 -> one decimal), as a person reads it."""
    step = Decimal(repr(float(precision))).normalize()
    q = (Decimal(repr(float(value))) / step).quantize(Decimal(1), rounding=ROUND_HALF_UP) * step
    return float(q.quantize(step) if step.as_tuple().exponent < 0 else q)


def precision_decimals(precision: float) -> int:
    """Decimals needed to show a multiple of ``precision`` (0.1 -> 1, 0.05 -> 2, 1 -> 0)."""
    exponent = Decimal(repr(float(precision))).normalize().as_tuple().exponent
    return max(0, -int(exponent))


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
            return abs(value - self.target) <= (self.tolerance or 0.0) + 1e-9
        if self.lower is not None and value < self.lower - 1e-9:
            return False
        if self.upper is not None and value > self.upper + 1e-9:
            return False
        return True

    @property
    def values(self) -> Tuple[float, ...]:
        return tuple(v for v in (self.lower, self.upper, self.target) if v is not None)

    def describe(self, unit: str) -> str:
        def fmt(v: float) -> str:
            return f"{v:g}"

        u = "%" if unit == "%" else f" {unit}"
        if self.target is not None:
            if self.tolerance:
                return f"{fmt(self.target)} ± {fmt(self.tolerance)}{u}"
            return f"= {fmt(self.target)}{u}"
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
    precision: float = 0.01  # reporting precision in ``unit``: values are judged and shown rounded to it

    @property
    def key(self) -> Tuple[str, str]:
        return self.structure, self.metric

    @property
    def advisory(self) -> bool:
        """An unconfirmed local default: shown and judged, but never deciding the verdict."""
        return not self.confirmed

    @property
    def decimals(self) -> int:
        return precision_decimals(self.precision)

    def judged_value(self, value: float) -> float:
        return round_to_precision(value, self.precision)

    def format_value(self, value: Optional[float]) -> str:
        """The value as judged and shown everywhere: rounded to the precision, with its unit."""
        if value is None:
            return "-"
        v = f"{self.judged_value(value):.{self.decimals}f}"
        return f"{v}%" if self.unit == "%" else f"{v} {self.unit}"


@dataclass(frozen=True)
class StructureRole:
    """A structure the protocol refers to, with the names it may carry in a segmentation."""

    name: str
    aliases: Tuple[str, ...] = ()
    kind: str = "oar"  # "target", "oar" or "reference"
    alpha_beta_gy: Optional[float] = None
    color: Tuple[float, float, float] = (0.5, 0.5, 0.5)
    derived: bool = False
    union_of: Tuple[str, ...] = ()  # when no segment matches: the union of these roles' segments

    def matches(self, segment_name: str) -> bool:
        key = name_key(segment_name)
        return key == name_key(self.name) or key in {name_key(a) for a in self.aliases}


@dataclass(frozen=True)
class PlanningSpec:
    """How the planning volumes are built (all margins in mm)."""

    ptv_margins_mm: Tuple[float, float, float, float, float, float]  # R, L, A, P, S, I
    prv_margin_mm: float
    thecal_sac_from_level: str  # from this level down (L3: "below L2") the thecal sac replaces the cord


@dataclass(frozen=True)
class ExpectedOrgan:
    """An organ at risk a physicist expects contoured for a target at these levels."""

    structure: str
    levels: str  # a level or an inclusive range, e.g. "T10-L5"
    source: str = ""

    def expected_at(self, level: str) -> bool:
        lo, hi = level_span(self.levels)
        a, b = level_span(level)
        return a <= hi and lo <= b


@dataclass(frozen=True)
class TrialResult:
    """What the trial reported for a metric over its patients: median and range (for the plan's context)."""

    structure: str
    metric: str
    median: float
    low: float
    high: float
    source: str = ""

    def position(self, value: float) -> str:
        """Where a plan's value falls: "below the trial's range", "within ...", "above ..."."""
        if value < self.low:
            return "below the trial's range"
        if value > self.high:
            return "above the trial's range"
        return "within the trial's range"


@dataclass(frozen=True)
class ReferenceDose:
    """A dose the trial discusses as a reference for a metric (not a limit): e.g. GTV D98% vs 25.3 Gy."""

    structure: str
    metric: str
    dose_gy: float
    label: str
    source: str = ""


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
    expected_organs: Tuple[ExpectedOrgan, ...] = ()
    trial_results: Tuple[TrialResult, ...] = ()
    reference_doses: Tuple[ReferenceDose, ...] = ()
    precision_source: str = ""
    checksum: str = ""  # sha256 of the parsed content (whitespace-insensitive)
    shipped_checksum: Optional[str] = None  # the checksum recorded for a shipped protocol of this id

    @property
    def modified(self) -> bool:
        """A protocol with a shipped id whose content no longer matches what was shipped."""
        return self.shipped_checksum is not None and self.checksum != self.shipped_checksum

    def expected_structures(self, level: str) -> List[str]:
        return [e.structure for e in self.expected_organs if e.expected_at(level)]

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


def content_checksum(data: dict) -> str:
    """sha256 of a protocol's content, independent of whitespace and key order."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def shipped_checksums() -> Dict[str, str]:
    try:
        lines = SHIPPED_CHECKSUMS.read_text(encoding="utf-8").splitlines()
    except OSError:
        return {}
    return {parts[1]: parts[0] for parts in (line.split() for line in lines) if len(parts) == 2}


def _metric(name: str, where: str):
    """The parsed metric, or a ProtocolError naming the field (never an uncaught DVH error)."""
    try:
        return parse_metric(name)
    except ValueError as exc:
        raise ProtocolError(f"{where}.metric: {exc}") from None


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
        union_of = s.get("union_of", [])
        if not isinstance(union_of, list) or not all(isinstance(u, str) for u in union_of):
            raise ProtocolError(f"{w}.union_of must be a list of structure names.")
        structures[name] = StructureRole(
            name,
            tuple(s.get("aliases", ())),
            kind,
            None if ab is None else float(ab),
            color,
            bool(s.get("derived", False)),
            tuple(union_of),
        )
    for name, role in structures.items():
        unknown = [u for u in role.union_of if u not in structures or u == name]
        if unknown:
            raise ProtocolError(f"{where}.structures.{name}.union_of: {unknown} are not other declared structures.")

    plan = _req(data, "planning", dict, where)
    m = _req(plan, "ptv_margin_mm", dict, f"{where}.planning")
    try:
        ptv = tuple(float(m[k]) for k in ("R", "L", "A", "P", "S", "I"))
    except (KeyError, TypeError, ValueError):
        raise ProtocolError(f"{where}.planning.ptv_margin_mm needs numbers R, L, A, P, S, I (mm).") from None
    prv = float(_req(plan, "prv_margin_mm", (int, float), f"{where}.planning"))
    for label, v in [*zip(("R", "L", "A", "P", "S", "I"), ptv), ("prv_margin_mm", prv)]:
        if not 0 <= v <= 50:
            raise ProtocolError(f"{where}.planning: margin {label} = {v:g} mm; margins are 0-50 mm.")
    sac_level = normalise_level(_req(plan, "thecal_sac_from_level", str, f"{where}.planning"))
    if "-" in sac_level:
        raise ProtocolError(f"{where}.planning.thecal_sac_from_level: one level, not a range; got {sac_level}.")
    planning = PlanningSpec(ptv, prv, sac_level)

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
        spec = _metric(metric, w)
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
        precision = c.get("precision", 0.01)
        if not isinstance(precision, (int, float)) or isinstance(precision, bool) or not 0 < precision <= 10:
            raise ProtocolError(f"{w}.precision: a reporting precision such as 0.1 (in {unit}); got {precision!r}.")
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
                float(precision),
            )
        )
    if not constraints:
        raise ProtocolError(f"{where}: the protocol has no constraints; a review with nothing to check is refused.")
    expected = []
    for n, e in enumerate(data.get("expected_organs", [])):
        w = f"{where}.expected_organs[{n}]"
        if not isinstance(e, dict):
            raise ProtocolError(f"{w}: expected an object with structure and levels.")
        structure = _req(e, "structure", str, w)
        if structure not in structures:
            raise ProtocolError(f"{w}.structure '{structure}' is not declared under 'structures'.")
        expected.append(ExpectedOrgan(structure, normalise_level(_req(e, "levels", str, w)), str(e.get("source", ""))))
    trial = []
    for n, t in enumerate(data.get("trial_results", [])):
        w = f"{where}.trial_results[{n}]"
        if not isinstance(t, dict) or _req(t, "structure", str, w) not in structures:
            raise ProtocolError(f"{w}: an object whose structure is declared under 'structures'.")
        _metric(_req(t, "metric", str, w), w)
        lo, med, hi = (float(_req(t, k, (int, float), w)) for k in ("min", "median", "max"))
        if not lo <= med <= hi:
            raise ProtocolError(f"{w}: needs min <= median <= max; got {lo}, {med}, {hi}.")
        trial.append(TrialResult(t["structure"], t["metric"], med, lo, hi, str(t.get("source", ""))))
    references = []
    for n, r in enumerate(data.get("reference_doses", [])):
        w = f"{where}.reference_doses[{n}]"
        if not isinstance(r, dict) or _req(r, "structure", str, w) not in structures:
            raise ProtocolError(f"{w}: an object whose structure is declared under 'structures'.")
        _metric(_req(r, "metric", str, w), w)
        references.append(
            ReferenceDose(
                r["structure"],
                r["metric"],
                float(_req(r, "dose_gy", (int, float), w)),
                str(_req(r, "label", str, w)),
                str(r.get("source", "")),
            )
        )
    target = _req(rx, "structure", str, f"{where}.prescription")
    if target not in structures:
        raise ProtocolError(f"{where}.prescription.structure '{target}' is not declared under 'structures'.")
    rx_metric = _req(rx, "metric", str, f"{where}.prescription")
    _metric(rx_metric, f"{where}.prescription")
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
        expected_organs=tuple(expected),
        trial_results=tuple(trial),
        reference_doses=tuple(references),
        precision_source=str(data.get("precision_source", "")),
        checksum=content_checksum(data),
        shipped_checksum=shipped_checksums().get(str(data.get("id"))),
    )
