"""A small synthetic thoracic (T8) case for the demo and the tests: CT, structures and an SIB dose.

Deterministic and analytic: shapes are ellipses/cylinders in patient (RAS) mm, the CT grid is
0.98 x 0.98 x 1.25 mm in DICOM's usual orientation (i towards patient left, j towards posterior), and the
dose lives on its own 2.5 mm grid, offset from the CT. The dose is built from distances to the target
and the cord, then scaled so that PTV_Eval D90% = 30 Gy, as a planner normalises a plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

import numpy as np

from ..geometry.grid import ImageGeometry

LPS_LIKE = ((-1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, 1.0))  # columns: RAS of i, j, k


@dataclass
class DemoCase:
    name: str
    level: str
    ct: np.ndarray  # HU, [k, j, i]
    ct_geometry: ImageGeometry
    segments: Dict[str, np.ndarray]  # source segments on the CT grid
    colors: Dict[str, tuple]
    dose_gy: np.ndarray  # on dose_geometry
    dose_geometry: ImageGeometry


def _ct_geometry() -> ImageGeometry:
    ni, nj, nk = 160, 144, 64
    s = (0.98, 0.98, 1.25)
    # centre the grid on RAS (0, -10, 0): i runs R->L, j runs A->P
    origin = ((ni - 1) / 2 * s[0], -10 + (nj - 1) / 2 * s[1], -(nk - 1) / 2 * s[2])
    return ImageGeometry((nk, nj, ni), origin, s, LPS_LIKE)


def _ras_grid(geometry: ImageGeometry):
    nk, nj, ni = geometry.shape
    k, j, i = np.meshgrid(np.arange(nk), np.arange(nj), np.arange(ni), indexing="ij")
    pts = geometry.ijk_to_ras_points(np.stack([i.ravel(), j.ravel(), k.ravel()], axis=1))
    return [c.reshape(geometry.shape) for c in pts.T]


def _anatomy(x, y, z):
    """Boolean structures at RAS points (mm). Vertebra T8 centred at z = 0, neighbours at +-26 mm."""
    ell = lambda cx, cy, rx, ry: ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0  # noqa: E731
    level_z = np.round(z / 26.0) * 26.0
    in_body = np.abs(z - level_z) <= 10.5  # vertebral bodies 21 mm tall, discs between
    body = ell(0, 20, 75, 62)
    lungs = (ell(-45, 25, 30, 42) | ell(45, 25, 30, 42)) & ~ell(0, 20, 20, 60)
    vb = ell(0, 8, 17, 14) & in_body
    disc = ell(0, 8, 17, 14) & ~in_body
    canal = ell(0, -14, 8, 8)
    sac = ell(0, -14, 6.5, 6.5)
    cord = ell(0, -13.5, 4.5, 3.6)
    pedicle_right = (np.abs(x - 10) <= 3.5) & (y > -12) & (y < -2) & in_body
    pedicle_left = (np.abs(x + 10) <= 3.5) & (y > -12) & (y < -2) & in_body
    lamina = ell(0, -17, 15, 11) & ~ell(0, -14, 10, 10) & (y < -12)
    spinous = (np.abs(x) <= 3.5) & (y <= -22) & (y >= -48) & (np.abs(z - level_z - (y + 22) * 0.3) <= 8)
    bone = vb | pedicle_right | pedicle_left | lamina | spinous
    esophagus = ell(-6, 32, 7, 6)
    gtv = (((x - 6) / 13) ** 2 + ((y - 9) / 11) ** 2 + (z / 10) ** 2 <= 1.0) & vb
    t8 = np.abs(level_z) < 1
    ctv = ((vb | pedicle_right) & t8) | gtv  # GTV on the right (+x): ipsilateral pedicle
    return dict(
        body=body,
        lungs=lungs,
        vb=vb,
        disc=disc,
        canal=canal,
        sac=sac,
        cord=cord,
        bone=bone,
        cortex=bone & ~ell(0, 8, 15.5, 12.5),
        esophagus=esophagus,
        gtv=gtv,
        ctv=ctv,
    )


def _ct_values(a) -> np.ndarray:
    ct = np.full(a["body"].shape, -1000.0)
    ct[a["body"]] = -90.0  # fat
    ct[a["body"] & (np.abs(a["body"]) > 0)] = -90.0
    ct[a["lungs"]] = -820.0
    ct[a["esophagus"]] = 30.0
    ct[a["disc"]] = 90.0
    ct[a["bone"]] = 250.0  # cancellous
    ct[a["cortex"]] = 1100.0
    ct[a["canal"]] = 15.0
    ct[a["cord"]] = 35.0
    ct[a["gtv"]] = 60.0  # lytic lesion
    return ct.astype(np.int16)


def _dose_at(x, y, z, a, ct_geometry, masks) -> np.ndarray:
    """Unnormalised SIB dose at RAS points: a shell on PTV_Eval, a boost on the GTV, cord sparing."""
    from scipy import ndimage

    def signed_distance(mask):
        s = np.asarray(ct_geometry.spacing[::-1])
        outside = ndimage.distance_transform_edt(~mask, sampling=s)
        inside = ndimage.distance_transform_edt(mask, sampling=s)
        return outside - inside

    def at_points(field):
        ijk = ct_geometry.ras_to_ijk_points(np.stack([x.ravel(), y.ravel(), z.ravel()], axis=1))
        return ndimage.map_coordinates(field, ijk[:, ::-1].T, order=1, mode="nearest").reshape(x.shape)

    sig = lambda t: 1.0 / (1.0 + np.exp(-t))  # noqa: E731
    d_target = at_points(signed_distance(masks["PTV_region"]))
    d_gtv = at_points(signed_distance(masks["GTV"]))
    # prescription shell: steep edge plus a low-dose tail outside the target
    base = 33.0 * (0.7 * sig(-(d_target - 1.0) / 0.9) + 0.3 * np.exp(-np.maximum(d_target, 0.0) / 10.0))
    boost = 10.5 * sig(-(d_gtv + 0.5) / 1.2)  # simultaneous integrated boost on the GTV
    r_cord = np.hypot(x, y + 13.5)
    cap = 17.0 + 3.0 * (r_cord - 4.0)  # cord sparing: 3 Gy/mm away from the cord surface
    soft = 1.5
    return np.maximum(-soft * np.logaddexp(-(base + boost) / soft, -cap / soft), 0.0)  # smooth minimum


def build_demo_case() -> DemoCase:
    """The demo case with its dose normalised to PTV_Eval D90% = 30 Gy."""
    from ..dose.dvh import compute_dvh
    from ..dose.grid import DoseGrid
    from ..geometry.margins import Margins, expand
    from ..geometry.masks import Mask

    g = _ct_geometry()
    x, y, z = _ras_grid(g)
    a = _anatomy(x, y, z)
    segs = {
        "GTV": a["gtv"],
        "CTV": a["ctv"],
        "SpinalCord": a["cord"],
        "ThecalSac": a["sac"],
        "SpinalCanal": a["canal"],
        "Esophagus": a["esophagus"],
    }
    colors = {
        "GTV": (1.0, 0.0, 0.0),
        "CTV": (0.6, 0.85, 0.2),
        "SpinalCord": (1.0, 1.0, 0.0),
        "ThecalSac": (0.2, 0.5, 1.0),
        "SpinalCanal": (0.5, 0.3, 0.8),
        "Esophagus": (0.8, 0.6, 0.4),
    }
    ptv = expand(Mask(a["ctv"], g), Margins.axial_si(2, 5)).array
    ptv_eval = ptv & ~a["canal"]

    # Dose grid: 2.5 mm, RAS-aligned, offset from the CT by a fraction of a voxel.
    dg = ImageGeometry((40, 44, 48), (-58.6, -64.3, -48.7), (2.5, 2.5, 2.5))
    dx, dy, dz = _ras_grid(dg)
    raw = _dose_at(dx, dy, dz, a, g, {"PTV_region": ptv_eval, "GTV": a["gtv"]})
    d90 = compute_dvh(Mask(ptv_eval, g, "PTV_Eval"), DoseGrid(raw, dg)).metric("D90%")
    dose = raw * (30.0 / d90)
    return DemoCase("demo-thoracic-T8", "T8", _ct_values(a), g, segs, colors, dose, dg)
