"""RTPLAN: the prescription (dose, fractions) a plan states, read with pydicom.

* Fractions: Number of Fractions Planned of the first Fraction Group.
* Prescription: the Target Prescription Dose (Gy) of the Dose References of type TARGET whose Dose
  Reference Structure Type is SITE or VOLUME (a region), with the ROI each refers to when given. When the
  fraction group references some of them (Referenced Dose Reference Sequence), those are the plan's. Dose
  references at points (structure type COORDINATES or POINT: an Eclipse "CALC POINT", a normalisation
  point) are never a prescription: they are kept in ``points`` and said so in ``notes``. A SIB plan states
  several region targets (e.g. 30 Gy to the PTV and 40 Gy to the GTV); the plan's prescription is then the
  lowest target dose (the dose the whole target must receive), and every target dose is kept in ``targets``.
* When the prescription cannot be told reliably (target dose references of no stated structure type, or a
  fraction group that references only dose references that are not region targets), ``total_dose_gy`` is
  None, ``ambiguous`` is True and ``notes`` say so: the plan's prescription is then not compared with a
  protocol's, which a review takes instead (a misread prescription must never fail a plan).
* When the plan states no target dose, ``total_dose_gy`` is None and ``notes`` say so: nothing is guessed
  from beam doses or monitor units.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

from .dicom_scan import read_dataset
from .errors import RTPlanError

#: Dose Reference Structure Types of a region (a prescription) and of a point (never a prescription).
REGION_TYPES = ("SITE", "VOLUME")
POINT_TYPES = ("COORDINATES", "POINT")


@dataclass(frozen=True)
class TargetDose:
    dose_gy: float
    roi_number: Optional[int] = None
    description: str = ""
    structure_type: str = ""  # Dose Reference Structure Type: SITE, VOLUME, COORDINATES, POINT ("" if unstated)
    number: Optional[int] = None  # Dose Reference Number

    def label(self) -> str:
        """How notes name it: "Dose Reference 2 (COORDINATES, 'CALC POINT', 11.31 Gy)"."""
        parts = [self.structure_type or "structure type not stated"]
        if self.description:
            parts.append(repr(self.description))
        parts.append(f"{self.dose_gy:.4g} Gy")
        number = f" {self.number}" if self.number is not None else ""
        return f"Dose Reference{number} ({', '.join(parts)})"


@dataclass
class Prescription:
    """What an RTPLAN prescribes. Doses in Gy (total over all fractions)."""

    path: Optional[Path]
    sop_instance_uid: str
    plan_label: str
    fractions: Optional[int]
    total_dose_gy: Optional[float]
    targets: List[TargetDose] = field(default_factory=list)
    frame_of_reference_uid: str = ""
    referenced_structure_set_uid: str = ""
    notes: List[str] = field(default_factory=list)
    points: List[TargetDose] = field(default_factory=list)  # target doses at points: never the prescription
    ambiguous: bool = False  # target doses stated, but which is the prescription cannot be told

    @property
    def dose_per_fraction_gy(self) -> Optional[float]:
        if self.total_dose_gy is None or not self.fractions:
            return None
        return self.total_dose_gy / self.fractions

    def describe(self) -> str:
        if self.total_dose_gy is None and self.ambiguous:
            doses = ", ".join(f"{d:g}" for d in sorted({t.dose_gy for t in self.targets}))
            dose = f"prescription ambiguous ({doses} Gy)"
        elif self.total_dose_gy is None:
            dose = "no prescription dose stated"
        else:
            dose = f"{self.total_dose_gy:g} Gy"
        frac = f" in {self.fractions} fractions" if self.fractions else ""
        boosts = sorted(
            {t.dose_gy for t in self.targets if self.total_dose_gy is not None and t.dose_gy > self.total_dose_gy}
        )
        extra = f" (boost to {', '.join(f'{d:g}' for d in boosts)} Gy)" if boosts else ""
        return f"{dose}{frac}{extra}"


def read_rtplan(source) -> Prescription:
    """Read an RTPLAN file (path) or pydicom dataset; raise RTPlanError for an unusable one."""
    ds = read_dataset(source) if isinstance(source, (str, Path)) else source
    path = Path(source) if isinstance(source, (str, Path)) else None
    where = str(path) if path is not None else "RTPLAN"
    notes: List[str] = []

    fractions = None
    groups = getattr(ds, "FractionGroupSequence", None) or []
    if groups:
        value = getattr(groups[0], "NumberOfFractionsPlanned", None)
        if value not in (None, ""):
            fractions = int(value)
            if fractions < 1:
                raise RTPlanError(f"{where}: Number of Fractions Planned is {fractions}. Re-export the plan.")
        if len(groups) > 1:
            notes.append(f"{where}: {len(groups)} fraction groups; the first is used for the number of fractions.")
    else:
        notes.append(f"{where}: no Fraction Group Sequence, so the number of fractions is unknown.")

    stated = []
    for item in getattr(ds, "DoseReferenceSequence", None) or []:
        if str(getattr(item, "DoseReferenceType", "") or "").upper() != "TARGET":
            continue
        value = getattr(item, "TargetPrescriptionDose", None)
        if value in (None, ""):
            continue
        dose = float(value)
        if dose <= 0:
            raise RTPlanError(f"{where}: a Target Prescription Dose of {dose} Gy. Re-export the plan.")
        roi = getattr(item, "ReferencedROINumber", None)
        number = getattr(item, "DoseReferenceNumber", None)
        stated.append(
            TargetDose(
                dose,
                int(roi) if roi not in (None, "") else None,
                str(getattr(item, "DoseReferenceDescription", "") or ""),
                str(getattr(item, "DoseReferenceStructureType", "") or "").strip().upper(),
                int(number) if number not in (None, "") else None,
            )
        )
    targets, points, ambiguous = _prescribed(stated, groups[0] if groups else None, where, notes)
    total = None if ambiguous else min((t.dose_gy for t in targets), default=None)
    if not stated:
        notes.append(
            f"{where}: no Target Prescription Dose in the Dose Reference Sequence; no prescription is assumed."
        )
    elif not targets:
        notes.append(f"{where}: the only target doses are at points; no prescription is assumed.")

    ss_uid = ""
    for item in getattr(ds, "ReferencedStructureSetSequence", None) or []:
        ss_uid = str(getattr(item, "ReferencedSOPInstanceUID", "") or "")
        break
    return Prescription(
        path=path,
        sop_instance_uid=str(getattr(ds, "SOPInstanceUID", "") or ""),
        plan_label=str(getattr(ds, "RTPlanLabel", "") or ""),
        fractions=fractions,
        total_dose_gy=total,
        targets=targets,
        frame_of_reference_uid=str(getattr(ds, "FrameOfReferenceUID", "") or ""),
        referenced_structure_set_uid=ss_uid,
        notes=notes,
        points=points,
        ambiguous=ambiguous,
    )


def _prescribed(stated: List[TargetDose], group, where: str, notes: List[str]):
    """(the region targets that are the plan's prescription, the targets at points, ambiguous) from the stated
    target doses (module doc); notes say what was set aside and why."""
    points = [t for t in stated if t.structure_type in POINT_TYPES]
    regions = [t for t in stated if t.structure_type in REGION_TYPES]
    untyped = [t for t in stated if t.structure_type not in POINT_TYPES + REGION_TYPES]
    if points:
        notes.append(
            f"{where}: {'; '.join(t.label() for t in points)} "
            f"{'is a dose at a point' if len(points) == 1 else 'are doses at points'} (a calculation or "
            "normalisation point), not the prescription."
        )
    referenced = set()
    for ref in getattr(group, "ReferencedDoseReferenceSequence", None) or []:
        value = getattr(ref, "ReferencedDoseReferenceNumber", None)
        if value not in (None, ""):
            referenced.add(int(value))
    if referenced and regions:
        chosen = [t for t in regions if t.number in referenced]
        if not chosen:
            notes.append(
                f"{where}: the fraction group references Dose Reference(s) {', '.join(map(str, sorted(referenced)))}, "
                f"none of them a target region ({'; '.join(t.label() for t in regions)}): the prescription is "
                "ambiguous, so it is not compared with the protocol's (the review takes the protocol's "
                "prescription). Check the plan's prescription in the planning system."
            )
            return regions, points, True
        if len(chosen) < len(regions):
            left = [t for t in regions if t not in chosen]
            notes.append(
                f"{where}: {'; '.join(t.label() for t in left)} not referenced by the fraction group, so not part of "
                "the prescription."
            )
        regions = chosen
    if untyped and regions:
        notes.append(
            f"{where}: {'; '.join(t.label() for t in untyped)} states no Dose Reference Structure Type and is left "
            "out of the prescription (the plan states target regions)."
        )
    elif untyped:
        notes.append(
            f"{where}: the target doses ({'; '.join(t.label() for t in untyped)}) state no Dose Reference Structure "
            "Type, so a prescription cannot be told from a dose at a point: the prescription is ambiguous and is "
            "not compared with the protocol's (the review takes the protocol's prescription). Check the plan's "
            "prescription in the planning system."
        )
        return untyped, points, True
    return regions, points, False
