"""MR T1 and T2 of a phantom on their own 1 mm grid, with a known rigid misregistration to the CT.

The patient lies differently in the MR scanner: a point that sits at ``p`` in the MR's patient frame
sits at ``mr_to_ct @ p`` in the CT's. The MR is synthesised by labelling its voxel centres, mapped into
the CT frame, with the same analytic anatomy as the CT, so ``mr_to_ct`` is the exact answer a rigid
registration (fixed = CT, moving = MR) must find. In Slicer terms it is the MR volume's parent
transform, "to parent" (see ``registration.rigid``).

Contrast (relative signal, 1 = brightest): on T1 fat and fatty marrow are bright, CSF dark, the cord
brighter than CSF, a lytic or blastic lesion dark against marrow, cortical bone and flowing blood black;
on T2 CSF is brightest, the cord dark within it, a lytic lesion bright and a blastic one dark. A smooth
receive-coil bias (brighter posteriorly, near the spine coil), a 0.5 mm Gaussian blur and Rician noise
(sigma 2 % of full scale) are added; values are stored as int16 on a 0-1000 scale.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

from ..geometry.grid import ImageGeometry
from .anatomy import T1, T2, Anatomy

MR_SCALE = 1000.0
NOISE_SIGMA = 0.02


def rotation_matrix(angles_deg: Sequence[float]) -> np.ndarray:
    """R = Rz @ Ry @ Rx for rotations (degrees) about the RAS x, y and z axes."""
    ax, ay, az = np.radians(np.asarray(angles_deg, float))
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def rigid_matrix(
    rotation: np.ndarray, translation_mm: Sequence[float], centre: Sequence[float] = (0, 0, 0)
) -> np.ndarray:
    """4x4 of p -> R (p - c) + c + t (RAS mm)."""
    r = np.asarray(rotation, float)
    c = np.asarray(centre, float)
    m = np.eye(4)
    m[:3, :3] = r
    m[:3, 3] = c - r @ c + np.asarray(translation_mm, float)
    return m


def axis_angle_matrix(axis: Sequence[float], angle_deg: float) -> np.ndarray:
    """Rotation by ``angle_deg`` about the unit ``axis`` (Rodrigues)."""
    a = np.asarray(axis, float)
    a = a / np.linalg.norm(a)
    th = np.radians(angle_deg)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(th) * k + (1 - np.cos(th)) * k @ k


def misregistration(rng, translation_mm: float, rotation_deg: float, centre: Sequence[float] = (0, 0, 0)) -> np.ndarray:
    """A rigid motion of exactly ``translation_mm`` and ``rotation_deg`` about ``centre`` in random
    directions drawn from ``rng``."""
    t = rng.normal(size=3)
    t *= translation_mm / np.linalg.norm(t)
    return rigid_matrix(axis_angle_matrix(rng.normal(size=3), rotation_deg), t, centre)


def rotation_angle_deg(matrix: np.ndarray) -> float:
    """The rotation angle (degrees) of a rigid 4x4 (or 3x3) matrix."""
    r = np.asarray(matrix, float)[:3, :3]
    return float(np.degrees(np.arccos(np.clip((np.trace(r) - 1) / 2, -1.0, 1.0))))


def synthesise_mr(
    anatomy: Anatomy, geometry: ImageGeometry, mr_to_ct: np.ndarray, rng
) -> Tuple[np.ndarray, np.ndarray]:
    """T1 and T2 (int16, [k, j, i] on ``geometry``, the MR frame); see the module docstring."""
    from scipy import ndimage

    from .cases import grid_points, sample_on_grid

    tissue, _, _, _ = sample_on_grid(anatomy, geometry, record=False, transform=mr_to_ct)
    # receive-coil sensitivity in the MR frame: brighter near the posterior coil, a little left-right shading
    x, y, _ = grid_points(geometry)
    y_post = float(y.min())
    x = x.reshape(geometry.shape)
    y = y.reshape(geometry.shape)
    bias = (0.72 + 0.5 * np.exp(-(y - y_post) / 90.0)) * (1.0 + 0.05 * np.tanh(x / 60.0))
    out = []
    sigma = 0.5 / np.asarray(geometry.spacing[::-1])
    for table in (T1, T2):
        s = ndimage.gaussian_filter(table[tissue] * bias.astype(np.float32), sigma=sigma)
        n1 = rng.standard_normal(s.shape, dtype=np.float32) * NOISE_SIGMA
        n2 = rng.standard_normal(s.shape, dtype=np.float32) * NOISE_SIGMA
        mag = np.sqrt((s + n1) ** 2 + n2**2)
        out.append(np.clip(np.rint(mag * MR_SCALE), 0, 32767).astype(np.int16))
    return out[0], out[1]
