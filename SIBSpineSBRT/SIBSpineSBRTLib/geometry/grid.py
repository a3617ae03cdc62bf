"""Image geometry: where each voxel of a [k, j, i] array sits in patient (RAS) space.

Conventions used across the library (the same as Slicer's):

* arrays are indexed ``[k, j, i]`` (slice, row, column), as ``slicer.util.arrayFromVolume`` returns them;
* ``origin`` is the RAS position (mm) of the centre of voxel ``(i, j, k) = (0, 0, 0)``;
* ``spacing`` is ``(si, sj, sk)`` in mm, along the i, j and k axes;
* ``directions`` is a 3x3 matrix whose *columns* are the unit RAS directions of the i, j and k axes.

So ``ras = origin + directions @ (spacing * ijk)``. In RAS, +x points to the patient's right, +y anterior
and +z superior (DICOM's LPS flips x and y).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Tuple

import numpy as np

#: Patient directions as RAS unit vectors.
PATIENT_DIRECTIONS = {
    "R": np.array([1.0, 0.0, 0.0]),
    "L": np.array([-1.0, 0.0, 0.0]),
    "A": np.array([0.0, 1.0, 0.0]),
    "P": np.array([0.0, -1.0, 0.0]),
    "S": np.array([0.0, 0.0, 1.0]),
    "I": np.array([0.0, 0.0, -1.0]),
}


class GeometryError(ValueError):
    """Two grids or a grid and its array do not fit together."""


@dataclass(frozen=True)
class ImageGeometry:
    """Voxel grid of a 3D image in RAS patient space (see the module docstring)."""

    shape: Tuple[int, int, int]  # (nk, nj, ni), numpy order
    origin: Tuple[float, float, float]
    spacing: Tuple[float, float, float]  # (si, sj, sk) mm
    directions: Tuple[Tuple[float, ...], ...] = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))

    def __post_init__(self) -> None:
        shape = tuple(int(n) for n in self.shape)
        if len(shape) != 3 or min(shape) < 1:
            raise GeometryError(f"Grid shape must be three positive sizes (k, j, i); got {self.shape}.")
        spacing = tuple(float(s) for s in self.spacing)
        if len(spacing) != 3 or not all(np.isfinite(spacing)) or min(spacing) <= 0:
            raise GeometryError(f"Voxel spacing must be three positive numbers in mm; got {self.spacing}.")
        origin = tuple(float(o) for o in self.origin)
        if len(origin) != 3 or not all(np.isfinite(origin)):
            raise GeometryError(f"Origin must be three finite numbers in mm; got {self.origin}.")
        d = np.asarray(self.directions, dtype=float)
        if d.shape != (3, 3) or not np.allclose(d.T @ d, np.eye(3), atol=1e-4):
            raise GeometryError(f"Direction matrix must be 3x3 orthonormal; got {self.directions}.")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "origin", origin)
        object.__setattr__(self, "directions", tuple(tuple(float(x) for x in row) for row in d))

    # -- construction -------------------------------------------------------------------------------
    @classmethod
    def from_ijk_to_ras(cls, matrix: Sequence[Sequence[float]], shape: Sequence[int]) -> ImageGeometry:
        """Build from a 4x4 (or 3x4) IJK-to-RAS matrix, as ``vtkMRMLVolumeNode.GetIJKToRASMatrix`` gives."""
        m = np.asarray(matrix, dtype=float)[:3]
        spacing = np.linalg.norm(m[:, :3], axis=0)
        if np.any(spacing <= 0):
            raise GeometryError("IJK-to-RAS matrix has a zero-length axis.")
        return cls(tuple(shape), tuple(m[:, 3]), tuple(spacing), tuple(map(tuple, m[:, :3] / spacing)))

    # -- matrices -----------------------------------------------------------------------------------
    @property
    def direction_matrix(self) -> np.ndarray:
        return np.asarray(self.directions, dtype=float)

    @property
    def ijk_to_ras(self) -> np.ndarray:
        """4x4 homogeneous IJK-to-RAS matrix."""
        m = np.eye(4)
        m[:3, :3] = self.direction_matrix * np.asarray(self.spacing)
        m[:3, 3] = self.origin
        return m

    @property
    def ras_to_ijk(self) -> np.ndarray:
        return np.linalg.inv(self.ijk_to_ras)

    @property
    def voxel_volume_mm3(self) -> float:
        return float(np.prod(self.spacing))

    @property
    def voxel_volume_cc(self) -> float:
        return self.voxel_volume_mm3 / 1000.0

    # -- points -------------------------------------------------------------------------------------
    def ijk_to_ras_points(self, ijk: np.ndarray) -> np.ndarray:
        """Map an (N, 3) array of (i, j, k) indices (may be fractional) to RAS mm."""
        ijk = np.asarray(ijk, dtype=float)
        return ijk @ (self.direction_matrix * np.asarray(self.spacing)).T + np.asarray(self.origin)

    def ras_to_ijk_points(self, ras: np.ndarray) -> np.ndarray:
        """Map an (N, 3) array of RAS mm points to fractional (i, j, k) indices."""
        ras = np.asarray(ras, dtype=float) - np.asarray(self.origin)
        return (ras @ self.direction_matrix) / np.asarray(self.spacing)

    def axis_for_direction(self, direction: str) -> Tuple[int, int]:
        """For a grid aligned with the patient axes, the numpy axis (0=k, 1=j, 2=i) and the sign of the
        index step that moves towards patient ``direction`` (one of R, L, A, P, S, I).

        Raises GeometryError for an oblique grid, where no single array axis points that way.
        """
        target = PATIENT_DIRECTIONS[direction.upper()]
        cosines = self.direction_matrix.T @ target  # per i, j, k axis
        ijk_axis = int(np.argmax(np.abs(cosines)))
        if abs(cosines[ijk_axis]) < 1 - 1e-4:
            raise GeometryError(f"Grid is oblique: no array axis points {direction}.")
        return 2 - ijk_axis, int(np.sign(cosines[ijk_axis]))

    @property
    def is_axis_aligned(self) -> bool:
        """True when every array axis runs along a patient axis (permuted and/or flipped allowed)."""
        d = np.abs(self.direction_matrix)
        return bool(np.all((d < 1e-4) | (d > 1 - 1e-4)))

    def bounds_ras(self) -> Tuple[np.ndarray, np.ndarray]:
        """Axis-aligned RAS bounding box (min, max) of the voxel cubes (not just their centres)."""
        nk, nj, ni = self.shape
        corners = np.array([[i, j, k] for i in (-0.5, ni - 0.5) for j in (-0.5, nj - 0.5) for k in (-0.5, nk - 0.5)])
        pts = self.ijk_to_ras_points(corners)
        return pts.min(axis=0), pts.max(axis=0)

    def same_grid(self, other: ImageGeometry, tol_mm: float = 1e-3) -> bool:
        """Same shape and every voxel centre within ``tol_mm`` of the other grid's."""
        if self.shape != other.shape:
            return False
        nk, nj, ni = self.shape
        corners = np.array([[i, j, k] for i in (0, ni - 1) for j in (0, nj - 1) for k in (0, nk - 1)], float)
        gap = np.linalg.norm(self.ijk_to_ras_points(corners) - other.ijk_to_ras_points(corners), axis=1)
        return bool(np.all(gap <= tol_mm))

    def crop(self, lo_kji: Sequence[int], hi_kji: Sequence[int]) -> ImageGeometry:
        """Sub-grid of voxels ``lo <= index < hi`` (numpy order); may extend beyond this grid (padding)."""
        lo = np.asarray(lo_kji, dtype=int)
        hi = np.asarray(hi_kji, dtype=int)
        if np.any(hi <= lo):
            raise GeometryError(f"Empty crop {tuple(lo)}..{tuple(hi)}.")
        origin = self.ijk_to_ras_points(lo[::-1][None, :])[0]
        return ImageGeometry(tuple(hi - lo), tuple(origin), self.spacing, self.directions)

    def describe(self) -> str:
        """For messages: size, spacing and the first voxel centre in DICOM patient coordinates (LPS, the sign of
        the DICOM files' Image Position (Patient); RAS flips x and y)."""
        nk, nj, ni = self.shape
        si, sj, sk = self.spacing
        x, y, z = self.origin
        return (
            f"{ni}x{nj}x{nk} voxels of {si:.3g}x{sj:.3g}x{sk:.3g} mm, first voxel centre at "
            f"({-x + 0.0:.2f}, {-y + 0.0:.2f}, {z + 0.0:.2f}) mm LPS"
        )
