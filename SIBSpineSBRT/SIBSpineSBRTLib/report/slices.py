"""Display planes in patient space, and volumes, doses and masks resampled onto them.

A plane is laid out in radiological convention whatever the grids' orientations: axial with the patient's
right on the image's left and anterior up; sagittal with anterior on the left and superior up (as in
Slicer's views). Sampling is trilinear for images and dose, nearest for masks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from ..dose.grid import DoseGrid
from ..geometry.grid import ImageGeometry
from ..geometry.masks import Mask


@dataclass(frozen=True)
class Plane:
    """Pixel (row r, column c) sits at ``origin + c * pixel_mm * u + r * pixel_mm * v`` (RAS mm)."""

    origin: Tuple[float, float, float]
    u: Tuple[float, float, float]  # screen right
    v: Tuple[float, float, float]  # screen down
    pixel_mm: float
    shape: Tuple[int, int]  # rows, columns
    name: str = ""

    def points(self) -> np.ndarray:
        rows, cols = self.shape
        r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        o, u, v = (np.asarray(a, float) for a in (self.origin, self.u, self.v))
        return o + (c[..., None] * u + r[..., None] * v) * self.pixel_mm

    @property
    def extent_mm(self) -> Tuple[float, float]:
        return self.shape[1] * self.pixel_mm, self.shape[0] * self.pixel_mm


_ORIENTATIONS = {
    "axial": ((-1.0, 0.0, 0.0), (0.0, -1.0, 0.0)),  # right->left across, anterior->posterior down
    "sagittal": ((0.0, -1.0, 0.0), (0.0, 0.0, -1.0)),  # anterior->posterior across, superior->inferior down
    "coronal": ((-1.0, 0.0, 0.0), (0.0, 0.0, -1.0)),
}


def plane_through(
    centre_ras, orientation: str, half_width_mm: float, half_height_mm: float, pixel_mm: float = 0.5
) -> Plane:
    """A plane of the given orientation centred on ``centre_ras``."""
    u, v = (np.asarray(a) for a in _ORIENTATIONS[orientation])
    cols = int(round(2 * half_width_mm / pixel_mm))
    rows = int(round(2 * half_height_mm / pixel_mm))
    origin = np.asarray(centre_ras, float) - u * half_width_mm - v * half_height_mm + (u + v) * pixel_mm / 2
    return Plane(tuple(origin), tuple(u), tuple(v), pixel_mm, (rows, cols), orientation)


def _sample(array: np.ndarray, geometry: ImageGeometry, ras: np.ndarray, order: int, fill: float) -> np.ndarray:
    from scipy import ndimage

    ijk = geometry.ras_to_ijk_points(ras.reshape(-1, 3))
    coords = ijk[:, ::-1].T  # (k, j, i) for the [k, j, i] array
    out = ndimage.map_coordinates(np.asarray(array, float), coords, order=order, mode="constant", cval=fill)
    inside = np.all((ijk >= -0.5) & (ijk <= np.array(geometry.shape[::-1]) - 0.5), axis=1)
    out[~inside] = fill
    return out.reshape(ras.shape[:-1])


def sample_image(array, geometry: ImageGeometry, plane: Plane, to_image_ras: Optional[np.ndarray] = None, fill=np.nan):
    """Image values on the plane. ``to_image_ras`` (4x4) maps plane (e.g. CT) RAS points into the image's
    own RAS, for an image shown through a transform (e.g. an MR registered to the CT)."""
    pts = plane.points()
    if to_image_ras is not None:
        m = np.asarray(to_image_ras, float)
        pts = pts @ m[:3, :3].T + m[:3, 3]
    return _sample(array, geometry, pts, 1, fill)


def sample_dose(dose: DoseGrid, plane: Plane) -> np.ndarray:
    """Dose (Gy) on the plane; NaN outside the dose grid."""
    return _sample(dose.array, dose.geometry, plane.points(), 1, np.nan)


def sample_mask(mask: Mask, plane: Plane) -> np.ndarray:
    return _sample(mask.array.astype(np.float32), mask.geometry, plane.points(), 0, 0.0) > 0.5
