"""Does the dose grid cover a structure? What a review may do with the part it does not.

A Dx% or VxGy% of a structure that lies partly outside the dose grid is not the structure's: it is taken
relative to the covered part only. The review therefore never judges a metric on the covered part alone:

* a target (GTV, CTV, PTV, PTV_Eval) with more than ``TARGET_OUTSIDE_TOLERANCE`` of its volume outside
  the grid is not evaluable;
* an organ at risk partly outside is evaluated with its outside part counted as 0 Gy only when the dose on
  the grid faces it crosses is low (below ``LOW_BOUNDARY_FRACTION`` of the prescription); the dose beyond
  the grid is then unknown but bounded by its edge. Otherwise it is not evaluable.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..geometry.masks import Mask
from .grid import DoseGrid

#: A target may have at most this fraction of its volume outside the dose grid (0.1%).
TARGET_OUTSIDE_TOLERANCE = 1e-3
#: An organ at risk's outside part counts as 0 Gy only where the grid's edge dose is below this x Rx.
LOW_BOUNDARY_FRACTION = 0.05


def boundary_dose_gy(mask: Mask, dose: DoseGrid) -> Optional[float]:
    """Highest dose on the faces of the dose grid that ``mask`` crosses, within the mask's footprint on
    each face (its bounding box in dose-grid indices). None when the mask does not cross the grid's edge."""
    box = mask.bounding_box()
    if box is None:
        return None
    (k0, j0, i0), (k1, j1, i1) = box
    corners = np.array(
        [[i, j, k] for i in (i0 - 0.5, i1 - 0.5) for j in (j0 - 0.5, j1 - 0.5) for k in (k0 - 0.5, k1 - 0.5)], float
    )
    ijk = dose.geometry.ras_to_ijk_points(mask.geometry.ijk_to_ras_points(corners))
    lo, hi = ijk.min(axis=0), ijk.max(axis=0)
    shape_ijk = dose.geometry.shape[::-1]
    arr = dose.array  # [k, j, i]
    found = None
    for a in range(3):  # dose-grid axis i, j, k
        n = shape_ijk[a]
        ends = [0] if lo[a] < -0.5 else []
        ends += [n - 1] if hi[a] > n - 0.5 else []
        for end in ends:
            face = np.take(arr, end, axis=2 - a)  # remaining axes in [k, j, i] order without a
            others = [b for b in (2, 1, 0) if b != a]  # ijk axes of the face's (row, column)
            sl = []
            for b in others:
                first = int(np.clip(np.floor(lo[b] + 0.5), 0, shape_ijk[b] - 1))
                last = int(np.clip(np.ceil(hi[b] - 0.5), 0, shape_ijk[b] - 1))
                sl.append(slice(first, last + 1))
            value = float(face[tuple(sl)].max())
            found = value if found is None else max(found, value)
    return found
