"""RTPLAN: the prescription (dose, fractions) a plan states, read with pydicom.

* Fractions: Number of Fractions Planned of the first Fraction Group.
* Prescription: the Target Prescription Dose (Gy) of each Dose Reference of type TARGET, with the ROI it
  refers to when given. A SIB plan states several (e.g. 30 Gy to the PTV and 40 Gy to the GTV); the plan's
  prescription is then the lowest target dose (the dose the whole target must receive), and every target
  dose is kept in ``targets``.
* When the plan states no target dose, ``total_dose_gy`` is None and ``notes`` say so: nothing is guessed
  from beam doses or monitor units.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

from .dicom_scan import read_dataset
from .errors import RTPlanError


@dataclass(frozen=True)
class TargetDose:
    dose_gy: float
    roi_number: Optional[int] = None
    description: str = ""


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

    @property
    def dose_per_fraction_gy(self) -> Optional[float]:
        if self.total_dose_gy is None or not self.fractions:
            return None
        return self.total_dose_gy / self.fractions

    def describe(self) -> str:
        if self.total_dose_gy is None:
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

    targets = []
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
        targets.append(
            TargetDose(
                dose,
                int(roi) if roi not in (None, "") else None,
                str(getattr(item, "DoseReferenceDescription", "") or ""),
            )
        )
    total = min((t.dose_gy for t in targets), default=None)
    if total is None:
        notes.append(
            f"{where}: no Target Prescription Dose in the Dose Reference Sequence; no prescription is assumed."
        )

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
    )
