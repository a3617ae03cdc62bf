"""Four synthetic spine SBRT teaching cases (cervical, thoracic, lumbar, sacral), built deterministically.

``build_case(case, variant, seed)`` gives a ``PhantomCase``: a planning CT (1.25 mm slices, 0.98 mm
pixels, DICOM-like orientation), MR T1 and T2 on their own 1 mm sagittal grid with a known rigid
misregistration, the source segments on the CT grid (GTV, CTV by the consensus sector rules, cord,
thecal sac, canal or sacral canal and foramina, nearby organs at risk) and an SIB dose on its own
2-2.5 mm grid normalised to PTV_Eval D90% = 30 Gy. The ``pass`` variant meets every mandatory limit of
the protocol; the ``fail`` variant breaks exactly the limits listed in ``intended_failures``.

Determinism: the anatomy, the lesion, the CTV and the dose depend only on the case (fixed parameters,
no randomness); the ``seed`` drives only the CT and MR noise and the MR misregistration (3-7 mm,
1.5-4 degrees about the target's centre), through numpy's ``default_rng`` (PCG64) on sub-streams spawned
from ``SeedSequence([seed, case index])``. Same case, variant and seed give the same bytes.

Cases (field ``case``), with the fail variant's intended failures:

* ``cervical``: C5, lytic, left body reaching the left pedicle -> CTV sectors {1, 2, 3};
  fail: SpinalCord_PRV02 D0.03cc > 25 Gy;
* ``thoracic``: T8, mixed, right body reaching the right pedicle -> {1, 5, 6}; fail: GTV D50% < 36 Gy;
* ``lumbar``: L2, blastic, diffuse in the body -> {1, 2, 6}; the conus ends at L1-L2;
  fail: ThecalSac D0.03cc > 30 Gy;
* ``sacrum``: S1, lytic, body and right ala -> sacral sectors {1, 2, 3, 4} of S1;
  fail: GTV D2% and PTV_Eval D2% > 51 Gy. There is no cord in the field, so SpinalCord_PRV02 D0.03cc is
  not evaluable (``expected_not_evaluable``) and the review's verdict for the pass variant is
  "incomplete" as long as the protocol requires that row at every level.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..geometry.grid import ImageGeometry
from . import spine as sp
from .anatomy import HU, Anatomy, Habitus, LesionSpec, T, Tube

CASE_NAMES = ("cervical", "thoracic", "lumbar", "sacrum")
VARIANTS = ("pass", "fail")
DEFAULT_SEED = 2025

LPS_LIKE = ((-1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, 1.0))  # columns: RAS of i, j, k (CT, dose)
#: MR acquired sagittally: i runs anterior -> posterior, j superior -> inferior, slices left -> right.
SAGITTAL = ((0.0, 0.0, 1.0), (-1.0, 0.0, 0.0), (0.0, -1.0, 0.0))

#: Segment colours (protocol colours where the protocol names the structure).
COLORS = {
    "GTV": (1.0, 0.0, 0.0),
    "CTV": (0.6, 0.85, 0.2),
    "SpinalCord": (1.0, 1.0, 0.0),
    "ThecalSac": (0.2, 0.5, 1.0),
    "SpinalCanal": (0.5, 0.3, 0.8),
    "SacralCanal": (0.5, 0.3, 0.8),
    "SacralForamina": (0.4, 0.2, 0.7),
    "Esophagus": (0.8, 0.6, 0.4),
    "Trachea": (0.5, 0.9, 0.9),
    "GreatVessels": (0.9, 0.2, 0.2),
    "Heart": (0.9, 0.3, 0.3),
    "Lung_L": (0.55, 0.75, 0.95),
    "Lung_R": (0.45, 0.65, 0.9),
    "Kidney_L": (0.75, 0.45, 0.25),
    "Kidney_R": (0.8, 0.5, 0.3),
    "Bowel_Small": (0.7, 0.5, 0.3),
    "Colon": (0.6, 0.4, 0.2),
    "Rectum": (0.6, 0.3, 0.2),
}


@dataclass(frozen=True)
class CaseSpec:
    """Everything that defines one case except the seed-driven image noise and misregistration."""

    case: str
    level: str
    description: str
    tilts_deg: Dict[str, float]
    habitus: Habitus
    lesion: LesionSpec
    ct_size: Tuple[int, int, int]  # (ni, nj, nk)
    ct_centre: Tuple[float, float, float]  # RAS centre of the CT grid
    mr_size: Tuple[int, int, int]  # (AP, SI, LR) mm = voxels
    mr_centre: Tuple[float, float, float]
    dose_spacing: float
    organs: Tuple[Tube, ...]
    failure: Tuple[Tuple[str, str], ...]  # the fail variant's intended failures (structure, metric)
    failure_story: str


def _bowel_loops(centres, radius=12.0, wall=2.5, gas=(), name="Bowel_Small") -> Tuple[Tube, ...]:
    """Short curved loops of small bowel around the given (x, y, z) centres (deterministic)."""
    out = []
    for k, (x, y, z) in enumerate(centres):
        a = 0.9 * k
        dx, dy = 16 * np.cos(a), 10 * np.sin(a)
        pts = [(x - dx, y - dy, z - 12), (x, y + 4, z), (x + dx, y + dy, z + 12)]
        out.append(Tube(name, pts, radius, wall=wall, lumen="bowel_fluid", gas_fraction=0.35 if k in gas else 0.0))
    return tuple(out)


def case_spec(case: str) -> CaseSpec:
    """The fixed definition of a case (see the module docstring)."""
    if case == "cervical":
        organs = (
            Tube(
                "Esophagus", [(-3.0, 17.5, -80.0), (-3.0, 18.5, 80.0)], 6.0, "oesophagus", lumen="gas", lumen_radius=1.2
            ),
            Tube("Trachea", [(0.0, 36.0, -80.0), (0.0, 34.0, 80.0)], 9.5, "cartilage", lumen="air", lumen_radius=8.0),
            Tube("", [(-24.0, 22.0, -80.0), (-26.0, 24.0, 80.0)], 4.0, "blood"),
            Tube("", [(24.0, 22.0, -80.0), (26.0, 24.0, 80.0)], 4.0, "blood"),
            Tube("", [(-33.0, 27.0, -80.0), (-35.0, 28.0, 80.0)], 6.0, "blood"),
            Tube("", [(33.0, 27.0, -80.0), (35.0, 28.0, 80.0)], 6.0, "blood"),
        )
        return CaseSpec(
            "cervical",
            "C5",
            "C5 lytic metastasis of the left vertebral body reaching the left pedicle: CTV = body, left pedicle, "
            "left lamina and transverse process (ISRC).",
            {"C2": -14, "C3": -9, "C4": -4, "C5": 0, "C6": 5, "C7": 10, "T1": 14},
            Habitus("neck", (0.0, 0.0), (60.0, 60.0), 2.3, -58.0, 6.0, 4.0),
            LesionSpec("lytic", (-8.5, -3.0, 0.5), (11.5, 10.0, 8.0), (sp.BODY, sp.PEDICLE_L), 0.12, 11),
            (150, 154, 88),
            (0.0, -8.0, 0.0),
            (120, 112, 96),
            (0.0, -12.0, 0.0),
            2.0,
            organs,
            (("SpinalCord_PRV02", "D0.03cc"),),
            "The planner let the boost spill towards the cord: SpinalCord_PRV02 D0.03cc is above 25 Gy.",
        )
    if case == "thoracic":
        organs = (
            Tube(
                "Esophagus", [(-4.0, 24.0, -80.0), (-5.0, 23.0, 80.0)], 7.0, "oesophagus", lumen="gas", lumen_radius=2.0
            ),
            Tube("GreatVessels", [(-24.0, 18.5, -80.0), (-23.0, 17.5, 80.0)], 12.5, "blood"),
            Tube("", [(10.0, 13.5, -80.0), (10.0, 13.5, 80.0)], 3.5, "blood"),  # azygos vein
        )
        return CaseSpec(
            "thoracic",
            "T8",
            "T8 mixed (lytic and blastic) metastasis of the right vertebral body reaching the right pedicle.",
            {"T5": 9, "T6": 6, "T7": 3, "T8": 0, "T9": -3, "T10": -6, "T11": -9},
            Habitus("chest", (0.0, 43.0), (150.0, 103.0), 2.3, -60.0, 8.0, 10.0),
            LesionSpec("mixed", (6.5, -3.0, 1.0), (13.0, 11.5, 9.0), (sp.BODY, sp.PEDICLE_R), 0.15, 23),
            (324, 244, 88),
            (0.0, 35.0, 0.0),
            (130, 120, 110),
            (0.0, -10.0, 0.0),
            2.5,
            organs,
            (("GTV", "D50%"),),
            "The GTV was set as an avoidance structure instead of a boost target: GTV D50% is below the 36 Gy minimum.",
        )
    if case == "lumbar":
        loops = _bowel_loops(
            [(-40, 62, 40), (0, 70, 20), (40, 64, 45), (-55, 80, -10), (-15, 95, -30), (25, 85, -5)], gas=(1, 4)
        )
        loops += _bowel_loops([(55, 75, -40), (-35, 60, -55), (10, 58, -60), (0, 110, 30)], gas=(1,), name="")
        organs = (
            Tube("GreatVessels", [(-14.0, 28.0, -80.0), (-14.0, 27.0, 80.0)], 10.0, "blood"),  # aorta
            Tube("GreatVessels", [(21.0, 26.0, -80.0), (21.0, 25.0, 80.0)], 9.0, "blood"),  # inferior vena cava
            # ascending and descending colon (shown, not contoured: far from the target)
            Tube("", [(86.0, 38.0, -80.0), (88.0, 42.0, 80.0)], 20.0, wall=2.5, lumen="bowel_fluid", gas_fraction=0.45),
            Tube(
                "", [(-88.0, 18.0, -80.0), (-86.0, 22.0, 80.0)], 16.0, wall=2.5, lumen="bowel_fluid", gas_fraction=0.5
            ),
        ) + loops
        return CaseSpec(
            "lumbar",
            "L2",
            "L2 blastic metastasis filling most of the vertebral body (diffuse): CTV = body and both pedicles. "
            "The conus medullaris ends at L1-L2; below it the thecal sac holds the cauda equina.",
            {"T11": 3, "T12": 0, "L1": -4, "L2": -6, "L3": -4, "L4": 4, "L5": 14},
            Habitus("abdomen", (0.0, 35.0), (150.0, 108.0), 2.2, -72.0, 10.0, 10.0),
            LesionSpec("blastic", (0.0, 1.0, 0.0), (18.5, 13.0, 11.0), (sp.BODY,), 0.12, 37),
            (324, 252, 96),
            (0.0, 27.0, 0.0),
            (150, 124, 130),
            (0.0, -12.0, 0.0),
            2.5,
            organs,
            (("ThecalSac", "D0.03cc"),),
            "The plan covered the PTV instead of PTV_Eval, the boost was planned on the GTV + 4 mm and the thecal "
            "sac had no dose limit: thecal sac D0.03cc is above 30 Gy.",
        )
    if case == "sacrum":
        loops = _bowel_loops([(20, 70, 30), (-5, 95, 0), (45, 60, -20), (60, 95, 35)], gas=(0, 2))
        loops += _bowel_loops([(55, 80, 10), (20, 100, -35)], name="")
        sigmoid = Tube(
            "Colon",
            [(-70, 40, 40), (-45, 55, 5), (-20, 70, -20), (10, 60, -40), (-5, 35, -55)],
            13.0,
            wall=2.5,
            lumen="bowel_fluid",
            gas_fraction=0.4,
        )
        rectum = Tube(
            "Rectum",
            [(-3, 18, -52), (0, 14, -72), (2, 18, -100)],
            16.0,
            wall=3.0,
            lumen="bowel_fluid",
            gas_fraction=0.3,
        )
        vessels = tuple(
            Tube("", [(s * a, yy, 50.0), (s * (a + 14), yy + 3, 0.0), (s * (a + 34), yy + 8, -70.0)], r, "blood")
            for s in (-1, 1)
            for a, yy, r in ((12.0, 32.0, 5.5), (19.0, 24.0, 7.0))
        )
        return CaseSpec(
            "sacrum",
            "S1",
            "S1 lytic metastasis of the sacral body extending into the right ala: sacral sectors (Dunne 2020).",
            {"L2": -6, "L3": -4, "L4": 6, "L5": 20},
            Habitus("pelvis", (0.0, 30.0), (165.0, 110.0), 2.4, -80.0, 16.0, 8.0),
            LesionSpec("lytic", (17.0, 1.0, 0.0), (22.0, 13.0, 12.5), (sp.SAC_BODY, sp.SAC_ALA_R), 0.15, 41),
            (354, 256, 104),
            (0.0, 21.0, -20.0),
            (150, 136, 150),
            (0.0, -10.0, -22.0),
            2.5,
            (sigmoid, rectum) + vessels + loops,
            (("GTV", "D2%"), ("PTV_Eval", "D2%")),
            "The boost was prescribed too hot: GTV D2% and PTV_Eval D2% exceed 51 Gy.",
        )
    raise ValueError(f"Unknown phantom case '{case}': choose one of {', '.join(CASE_NAMES)}.")


def build_anatomy(spec: CaseSpec) -> Anatomy:
    column = sp.build_column(spec.level, spec.tilts_deg)
    seed = CASE_NAMES.index(spec.case) + 1
    return Anatomy(spec.level, column, spec.habitus, spec.lesion, list(spec.organs), seed)


def ct_geometry(spec: CaseSpec) -> ImageGeometry:
    ni, nj, nk = spec.ct_size
    s = (0.98, 0.98, 1.25)
    cx, cy, cz = spec.ct_centre
    origin = (cx + (ni - 1) / 2 * s[0], cy + (nj - 1) / 2 * s[1], cz - (nk - 1) / 2 * s[2])
    return ImageGeometry((nk, nj, ni), origin, s, LPS_LIKE)


def mr_geometry(spec: CaseSpec) -> ImageGeometry:
    """1 mm sagittal grid (in the MR scanner's patient frame) centred on ``mr_centre``."""
    n_ap, n_si, n_lr = spec.mr_size
    d = np.asarray(SAGITTAL, float)
    half = (np.array([n_ap, n_si, n_lr], float) - 1) / 2
    origin = np.asarray(spec.mr_centre) - d @ half
    return ImageGeometry((n_lr, n_si, n_ap), tuple(origin), (1.0, 1.0, 1.0), SAGITTAL)


def grid_points(geometry: ImageGeometry, k0: int = 0, k1: Optional[int] = None, transform=None):
    """RAS x, y, z (float32, flat, [k, j, i] order) of the voxel centres of slices k0..k1-1, optionally
    mapped by a 4x4 ``transform``."""
    nk, nj, ni = geometry.shape
    k1 = nk if k1 is None else k1
    m = geometry.ijk_to_ras
    if transform is not None:
        m = np.asarray(transform, float) @ m
    i = np.arange(ni, dtype=np.float64)
    j = np.arange(nj, dtype=np.float64)
    k = np.arange(k0, k1, dtype=np.float64)
    out = []
    for r in range(3):
        c = (m[r, 3] + m[r, 2] * k)[:, None, None] + (m[r, 1] * j)[None, :, None] + (m[r, 0] * i)[None, None, :]
        out.append(c.astype(np.float32).ravel())
    return out


def sample_on_grid(anatomy: Anatomy, geometry: ImageGeometry, record: bool = False, transform=None, chunk=16):
    """Label a whole grid slab by slab. ``transform`` (4x4) maps grid RAS to the anatomy's RAS first.

    Returns (tissue, bone_hu, structures, parts) as [k, j, i] arrays (structures as bool arrays)."""
    nk, nj, ni = geometry.shape
    tissue = np.zeros(geometry.shape, np.uint8)
    bone = np.zeros(geometry.shape, np.float32)
    parts = np.zeros(geometry.shape, np.int8) if record else None
    structures: Dict[str, np.ndarray] = {}
    for k0 in range(0, nk, chunk):
        k1 = min(nk, k0 + chunk)
        x, y, z = grid_points(geometry, k0, k1, transform)
        t, b, s, p = anatomy.sample(x, y, z, record)
        tissue[k0:k1] = t.reshape(k1 - k0, nj, ni)
        bone[k0:k1] = b.reshape(k1 - k0, nj, ni)
        if record:
            parts[k0:k1] = p.reshape(k1 - k0, nj, ni)
            for name, arr in s.items():
                if name not in structures:
                    structures[name] = np.zeros(geometry.shape, bool)
                structures[name][k0:k1] = arr.reshape(k1 - k0, nj, ni)
    return tissue, bone, structures, parts


def synthesise_ct(tissue: np.ndarray, bone_hu: np.ndarray, geometry: ImageGeometry, rng) -> np.ndarray:
    """HU from tissue labels: partial-volume blur (scanner PSF) and noise; int16."""
    from scipy import ndimage

    hu = HU[tissue]
    cancellous = tissue == T["cancellous"]
    hu[cancellous] = bone_hu[cancellous]
    psf_mm = np.array([0.6, 0.45, 0.45])  # k (slice), j, i
    hu = ndimage.gaussian_filter(hu, sigma=psf_mm / np.asarray(geometry.spacing[::-1]))
    noise = rng.standard_normal(hu.shape, dtype=np.float32)
    noise = ndimage.gaussian_filter(noise, sigma=(0.3, 0.6, 0.6)) * np.float32(2.2 * 11.0)
    hu += noise * (hu > -950)
    return np.clip(np.rint(hu), -1024, 3071).astype(np.int16)


def _timer():
    t0 = time.perf_counter()
    return lambda: time.perf_counter() - t0


@dataclass
class PhantomCase:
    """A synthetic case: the ``DemoCase`` fields (used by ``mrml.case.add_case_nodes``) and more."""

    name: str
    level: str
    ct: np.ndarray  # HU, int16 [k, j, i]
    ct_geometry: ImageGeometry
    segments: Dict[str, np.ndarray]  # bool on the CT grid
    colors: Dict[str, tuple]
    dose_gy: np.ndarray  # float32 on dose_geometry
    dose_geometry: ImageGeometry
    # -- beyond DemoCase ------------------------------------------------------------------------------
    case: str = ""
    variant: str = "pass"
    seed: int = DEFAULT_SEED
    description: str = ""
    lesion_type: str = ""
    mr_t1: Optional[np.ndarray] = None  # int16 [k, j, i] on mr_geometry
    mr_t2: Optional[np.ndarray] = None
    mr_geometry: Optional[ImageGeometry] = None
    mr_to_ct: Optional[np.ndarray] = None  # 4x4 RAS: maps MR-frame points to CT-frame points (truth)
    intended_failures: List[Tuple[str, str]] = field(default_factory=list)
    failure_story: str = ""
    expected_not_evaluable: List[Tuple[str, str]] = field(default_factory=list)
    landmarks: Dict[str, np.ndarray] = field(default_factory=dict)  # RAS (CT frame)
    registration_roi: Optional[np.ndarray] = None  # bool on the CT grid: target +- one level
    sectors: Dict[str, object] = field(default_factory=dict)  # involved/included sectors and the rule used
    timings: Dict[str, float] = field(default_factory=dict)


# -- dose parameters per case and variant ----------------------------------------------------------------

_CAPS = {
    "ThecalSac": (24.5, 4.5),
    "SpinalCord_PRV02": (20.0, 4.5),
    "Esophagus": (24.0, 2.5),
    "Trachea": (24.0, 2.5),
    "GreatVessels": (36.0, 2.0),
    "Bowel_Small": (22.0, 2.5),
    "Colon": (26.0, 2.5),
    "Rectum": (26.0, 2.5),
}


def dose_params(case: str, variant: str):
    """The dose model's parameters for a case and variant (tuned so that the pass variant meets every
    mandatory limit and the fail variant breaks exactly ``intended_failures``)."""
    from .dose_model import DoseParams, with_caps

    base = DoseParams(caps=dict(_CAPS))
    per_case = {
        # the cervical cord fills most of the sac: a steeper fall-off keeps the GTV next to it covered
        "cervical": with_caps(
            base, boost=15.0, boost_margin=1.0, caps={"SpinalCord_PRV02": (20.0, 5.0), "ThecalSac": (24.5, 5.0)}
        ),
        "thoracic": with_caps(base, boost=14.0),
        "lumbar": with_caps(base, boost=12.5),
        "sacrum": with_caps(base, boost=13.0),
    }[case]
    if variant == "pass":
        return per_case
    if variant != "fail":
        raise ValueError(f"Unknown variant '{variant}': choose pass or fail.")
    return {
        "cervical": with_caps(per_case, caps={"SpinalCord_PRV02": (29.0, 4.0), "ThecalSac": (28.0, 4.0)}),
        "thoracic": with_caps(per_case, boost=-3.5),
        "lumbar": with_caps(per_case, target="PTV", boost_margin=4.0, caps={"ThecalSac": (60.0, 4.0)}),
        "sacrum": with_caps(per_case, boost=25.0),
    }[case]


# -- building a case --------------------------------------------------------------------------------------

#: Segments written to the case (structures the anatomy records under other names are dropped).
_SEGMENT_ORDER = (
    "GTV",
    "CTV",
    "SpinalCord",
    "ThecalSac",
    "SpinalCanal",
    "SacralCanal",
    "SacralForamina",
    "Esophagus",
    "Trachea",
    "GreatVessels",
    "Kidney_L",
    "Kidney_R",
    "Bowel_Small",
    "Colon",
    "Rectum",
)


def _streams(case: str, seed: int):
    """Independent random streams (CT noise, MR misregistration, MR noise) for a case and seed."""
    ss = np.random.SeedSequence([int(seed), CASE_NAMES.index(case)])
    return [np.random.default_rng(s) for s in ss.spawn(3)]


def _target_ctv(spec: CaseSpec, anatomy: Anatomy, g: ImageGeometry, parts, structures):
    from . import sectors

    bone = parts > 0
    gtv = structures["GTV"]
    if spec.level.startswith("S"):
        ctv, res, decision = sectors.sacral_ctv(
            bone, structures["SacralCanal"], gtv, g, structures.get("SacralForamina")
        )
        names = sectors.SACRAL_NAMES
        scheme = "sacral (involved + adjacent sectors; our reading of Dunne 2020)"
    else:
        ctv, res, decision = sectors.isrc_ctv(bone, structures["SpinalCanal"], gtv, g)
        names = sectors.ISRC_NAMES
        scheme = "ISRC (Cox 2012)"
    info = {
        "scheme": scheme,
        "involved": sorted(decision.involved),
        "included": sorted(decision.included),
        "rule": decision.rule,
        "names": {k: names[k] for k in sorted(decision.included)},
    }
    return ctv, res, info


def build_anatomy_images(case: str, seed: int = DEFAULT_SEED) -> dict:
    """Everything of a case except the dose: CT, MR, segments, landmarks and the target vertebra's
    analytic part map (``target_parts``, int8 on the CT grid, ids of ``spine.PART_NAMES``) as a dict.
    ``case_from_images`` turns it into a ``PhantomCase`` per variant, sharing the arrays."""
    from .mr import misregistration, synthesise_mr

    spec = case_spec(case)
    clock = _timer()
    anatomy = build_anatomy(spec)
    g = ct_geometry(spec)
    rng_ct, rng_reg, rng_mr = _streams(case, seed)
    tissue, bone_hu, structures, parts = sample_on_grid(anatomy, g, record=True)
    t_sample = clock()
    ct = synthesise_ct(tissue, bone_hu, g, rng_ct)
    if "SacralCanal" in structures and "SpinalCanal" in structures:
        structures["SpinalCanal"] &= ~structures["SacralCanal"]
    ctv, _, sector_info = _target_ctv(spec, anatomy, g, parts, structures)
    structures["CTV"] = ctv
    segments = {n: structures[n] for n in _SEGMENT_ORDER if n in structures and structures[n].any()}
    t_ct = clock()
    # MR: a misregistration of 3-7 mm and 1.5-4 degrees about the target's centre
    mr_to_ct = misregistration(rng_reg, rng_reg.uniform(3.0, 7.0), rng_reg.uniform(1.5, 4.0))
    mg = mr_geometry(spec)
    t1, t2 = synthesise_mr(anatomy, mg, mr_to_ct, rng_mr)
    t_mr = clock()
    target = anatomy.target_element
    landmarks = {"gtv_centroid": _centroid(segments["GTV"], g)}
    for n, p in enumerate(sp.corners_ras(target)):
        landmarks[f"body_corner_{n + 1}"] = p
    return dict(
        seed=seed,
        spec=spec,
        anatomy=anatomy,
        ct=ct,
        ct_geometry=g,
        segments=segments,
        body=structures["Body"],
        mr_t1=t1,
        mr_t2=t2,
        mr_geometry=mg,
        mr_to_ct=mr_to_ct,
        landmarks=landmarks,
        registration_roi=structures["_registration_roi"],
        sectors=sector_info,
        target_parts=parts,
        timings={"ct_sampling_s": t_sample, "ct_and_segments_s": t_ct - t_sample, "mr_s": t_mr - t_ct},
    )


def _centroid(mask: np.ndarray, g: ImageGeometry) -> np.ndarray:
    k, j, i = np.nonzero(mask)
    return g.ijk_to_ras_points(np.array([[i.mean(), j.mean(), k.mean()]]))[0]


def planning_masks(segments: Dict[str, np.ndarray], level: str, g: ImageGeometry) -> Dict[str, np.ndarray]:
    """PTV, PTV_Eval and SpinalCord_PRV02 as the review builds them (the project's protocol and margins)."""
    import warnings

    from ..geometry.masks import Mask
    from ..protocol.model import load_protocol
    from ..review.planning_volumes import build_planning_volumes

    protocol = load_protocol()
    roles = {n: Mask(a, g, n) for n, a in segments.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        built, _ = build_planning_volumes(protocol, roles, level)
    return {n: v.mask.array for n, v in built.items()}


def add_dose(images: dict, variant: str = "pass"):
    """The SIB dose of a case (from ``build_anatomy_images``) for a variant: (dose, geometry, factor).
    Distance fields are cached in ``images`` and shared between variants."""
    from .dose_model import build_dose

    spec = images["spec"]
    seg = images["segments"]
    g = images["ct_geometry"]
    if "_planning" not in images:
        images["_planning"] = planning_masks(seg, spec.level, g)
    masks = dict(seg)
    masks.update(images["_planning"])
    masks["Body"] = images["body"]
    dose, dg, factor, fields = build_dose(
        masks, g, dose_params(spec.case, variant), spec.dose_spacing, images.get("_fields")
    )
    images["_fields"] = fields
    return dose, dg, factor


def build_case(case: str = "thoracic", variant: str = "pass", seed: int = DEFAULT_SEED) -> PhantomCase:
    """Build one synthetic case (see the module docstring); deterministic for a given case, variant and seed."""
    if case not in CASE_NAMES:
        raise ValueError(f"Unknown phantom case '{case}': choose one of {', '.join(CASE_NAMES)}.")
    if variant not in VARIANTS:
        raise ValueError(f"Unknown variant '{variant}': choose pass or fail.")
    clock = _timer()
    images = build_anatomy_images(case, seed)
    return case_from_images(images, variant, clock)


def case_from_images(images: dict, variant: str, clock=None) -> PhantomCase:
    """Assemble a ``PhantomCase`` for ``variant`` from ``build_anatomy_images`` (shares the arrays)."""
    clock = clock or _timer()
    spec = images["spec"]
    t0 = clock()
    dose, dg, factor = add_dose(images, variant)
    timings = dict(images["timings"])
    timings["dose_s"] = clock() - t0
    timings["total_s"] = clock()
    failing = list(spec.failure) if variant == "fail" else []
    not_evaluable = [("SpinalCord_PRV02", "D0.03cc")] if "SpinalCord" not in images["segments"] else []
    description = spec.description + (f" Teaching variant: {spec.failure_story}" if variant == "fail" else "")
    return PhantomCase(
        name=f"phantom-{spec.case}-{spec.level}-{variant}",
        level=spec.level,
        ct=images["ct"],
        ct_geometry=images["ct_geometry"],
        segments=dict(images["segments"]),  # a new dict: callers may drop segments (demo --drop-segment)
        colors={n: COLORS.get(n, (0.5, 0.5, 0.5)) for n in images["segments"]},
        dose_gy=dose,
        dose_geometry=dg,
        case=spec.case,
        variant=variant,
        seed=int(images.get("seed", DEFAULT_SEED)),
        description=description,
        lesion_type=spec.lesion.kind,
        mr_t1=images["mr_t1"],
        mr_t2=images["mr_t2"],
        mr_geometry=images["mr_geometry"],
        mr_to_ct=images["mr_to_ct"],
        intended_failures=failing,
        failure_story=spec.failure_story if variant == "fail" else "",
        expected_not_evaluable=not_evaluable,
        landmarks=dict(images["landmarks"]),
        registration_roi=images["registration_roi"],
        sectors=dict(images["sectors"]),
        timings=timings,
    )
