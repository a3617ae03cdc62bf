"""Dose on a grid, with its unit, and trilinear interpolation at arbitrary patient points.

The dose between voxel centres is the trilinear interpolation of the eight surrounding values. Between
the outermost voxel centres and the edge of the grid (the outer half voxel) the edge value is used, so
the field is constant across that half voxel. A point belongs to the grid when it lies inside one of its
voxel cubes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np

from ..geometry.grid import ImageGeometry

#: Units we accept for a physical dose, as DICOM RTDOSE spells them, mapped to Gy per unit.
DOSE_UNITS_TO_GY = {"GY": 1.0, "CGY": 0.01}


class DoseError(ValueError):
    """A dose volume that cannot be evaluated as it is (no units, NaN, negative values...)."""


@dataclass(frozen=True, eq=False)
class DoseGrid:
    """Physical dose in Gy on a ``[k, j, i]`` grid (converted from cGy on construction if needed)."""

    array: np.ndarray
    geometry: ImageGeometry
    name: str = "Dose"

    def __post_init__(self) -> None:
        arr = np.asarray(self.array, dtype=np.float64)
        if arr.shape != self.geometry.shape:
            raise DoseError(f"Dose {self.name}: array shape {arr.shape} does not match its grid {self.geometry.shape}.")
        bad = ~np.isfinite(arr)
        if bad.any():
            raise DoseError(
                f"Dose {self.name} has {int(bad.sum())} voxels that are NaN or infinite; "
                "fix or re-export the dose before evaluating."
            )
        if arr.min() < 0:
            raise DoseError(f"Dose {self.name} has negative values (min {arr.min():.3g} Gy); a physical dose cannot.")
        arr = arr.copy()
        arr.setflags(write=False)
        object.__setattr__(self, "array", arr)
        # Interpolation table: at least two values along every axis (a single slice is repeated, which
        # makes the field constant along that axis), flattened for fast gathers.
        pad = [(0, 1 if n == 1 else 0) for n in arr.shape]
        table = np.pad(arr, pad, mode="edge") if any(p[1] for p in pad) else arr
        object.__setattr__(self, "_table_shape", table.shape)
        object.__setattr__(self, "_table", np.ascontiguousarray(table).ravel())

    @classmethod
    def from_array(cls, array, geometry: ImageGeometry, unit: str, name: str = "Dose") -> DoseGrid:
        """Build from values in ``unit`` ("Gy" or "cGy"); a missing or unknown unit is an error, never a guess."""
        if unit is None or str(unit).strip() == "":
            raise DoseError(
                f"Dose {name} has no unit. Set it (Gy or cGy): for a DICOM RTDOSE, DoseUnits; for a volume "
                "file, pass --dose-unit Gy."
            )
        key = str(unit).strip().upper()
        if key not in DOSE_UNITS_TO_GY:
            raise DoseError(f"Dose {name} has unit '{unit}', which is not a physical dose unit (Gy or cGy).")
        return cls(np.asarray(array, dtype=np.float64) * DOSE_UNITS_TO_GY[key], geometry, name)

    @property
    def max_gy(self) -> float:
        return float(self.array.max())

    def scaled(self, factor: float, name: str = "") -> DoseGrid:
        """A new dose grid multiplied by ``factor`` (the original is untouched)."""
        if not np.isfinite(factor) or factor < 0:
            raise DoseError(f"Dose scale factor must be a finite number >= 0; got {factor}.")
        return DoseGrid(self.array * factor, self.geometry, name or f"{self.name} x{factor:.4g}")

    def sample(self, ras: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Trilinear dose (Gy) at (N, 3) RAS points, and a boolean array telling which points lie inside
        the grid's voxel cubes. Between the outermost voxel centres and the grid edge the edge value is used."""
        ijk = self.geometry.ras_to_ijk_points(np.asarray(ras, dtype=float).reshape(-1, 3))
        dose, _, inside = self.interpolate_index(ijk, gradient=False)
        return dose, inside

    def sample_with_gradient(self, ras: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Like ``sample``, plus the gradient (Gy/mm, (N, 3) RAS) of the trilinear field at each point.

        Along an axis where the point lies in the grid's outer half voxel the field is constant, so that
        component is zero. On a plane between two dose cells the gradient of the cell above is returned.
        """
        ijk = self.geometry.ras_to_ijk_points(np.asarray(ras, dtype=float).reshape(-1, 3))
        dose, grad_ijk, inside = self.interpolate_index(ijk, gradient=True)
        # d/dras = directions @ (d/dijk / spacing)
        grad = np.einsum("nc,rc->nr", grad_ijk / np.asarray(self.geometry.spacing), self.geometry.direction_matrix)
        return dose, grad, inside

    def interpolate_index(self, ijk: np.ndarray, gradient: bool = False):
        """Trilinear dose at (N, 3) fractional (i, j, k) indices of this grid.

        Returns ``(dose, grad_ijk, inside)``: dose in Gy (float64); the gradient in Gy per index step
        along i, j, k ((N, 3) float64, or None when ``gradient`` is False); and whether each point lies
        inside the grid's voxel cubes.
        """
        ijk = np.asarray(ijk, dtype=np.float64)
        nk, nj, ni = self.geometry.shape
        upper = np.array([ni - 1, nj - 1, nk - 1], dtype=np.float64)
        inside = np.all((ijk >= -0.5) & (ijk <= upper + 0.5), axis=1)
        clipped = np.clip(ijk, 0.0, upper)
        tk, tj, ti = self._table_shape
        base = np.minimum(np.floor(clipped).astype(np.int64), np.array([ti - 2, tj - 2, tk - 2]))
        f = clipped - base
        fi, fj, fk = f[:, 0], f[:, 1], f[:, 2]
        flat = (base[:, 2] * tj + base[:, 1]) * ti + base[:, 0]
        t = self._table
        sj, sk = ti, ti * tj
        c000, c001 = t[flat], t[flat + 1]
        c010, c011 = t[flat + sj], t[flat + sj + 1]
        c100, c101 = t[flat + sk], t[flat + sk + 1]
        c110, c111 = t[flat + sk + sj], t[flat + sk + sj + 1]
        # along i (index c<k><j><i>)
        x00, x01, x10, x11 = c001 - c000, c011 - c010, c101 - c100, c111 - c110
        e00, e01, e10, e11 = c000 + fi * x00, c010 + fi * x01, c100 + fi * x10, c110 + fi * x11
        # along j
        y0, y1 = e01 - e00, e11 - e10
        g0, g1 = e00 + fj * y0, e10 + fj * y1
        dk = g1 - g0
        dose = g0 + fk * dk
        if not gradient:
            return dose, None, inside
        xi0 = x00 + fj * (x01 - x00)
        xi1 = x10 + fj * (x11 - x10)
        grad = np.empty((len(dose), 3))
        grad[:, 0] = xi0 + fk * (xi1 - xi0)
        grad[:, 1] = y0 + fk * (y1 - y0)
        grad[:, 2] = dk
        # constant extrapolation in the outer half voxel (and along single-slice axes)
        grad[(ijk < 0.0) | (ijk > upper)] = 0.0
        return dose, grad, inside
