"""Where a review departs from its protocol: every parameter that differs from the protocol file, and a
protocol file that no longer matches what was shipped. A review with deviations is a NON-PROTOCOL review,
said next to its verdict in every front end."""

from __future__ import annotations

from typing import List, Optional

from ..geometry.margins import Margins
from ..protocol.model import Protocol

NON_PROTOCOL = "NON-PROTOCOL REVIEW"


def protocol_deviations(
    protocol: Protocol, ptv_margins: Optional[Margins] = None, prv_margin_mm: Optional[float] = None
) -> List[str]:
    out = []
    if protocol.modified:
        out.append(
            f"Protocol file {protocol.path} carries the id {protocol.id} but its content differs from the shipped "
            f"{protocol.id} (sha256 {protocol.checksum[:12]}... instead of {protocol.shipped_checksum[:12]}...): its "
            "limits, margins or level rules may not be the trial's."
        )
    default = Margins(*protocol.planning.ptv_margins_mm)
    if ptv_margins is not None and tuple(ptv_margins.as_tuple()) != tuple(default.as_tuple()):
        out.append(f"PTV margins {ptv_margins.describe()} instead of the protocol's {default.describe()}.")
    if prv_margin_mm is not None and float(prv_margin_mm) != protocol.planning.prv_margin_mm:
        out.append(
            f"SpinalCord_PRV02 margin {float(prv_margin_mm):g} mm instead of the protocol's "
            f"{protocol.planning.prv_margin_mm:g} mm."
        )
    return out
