"""The phantoms as Slicer sample data: generated locally on first use, nothing downloaded.

``SAMPLES`` lists the eight entries (four cases x pass/fail) with titles for a sample-data panel, and
``load_phantom`` builds one case and puts it into an MRML scene: CT, segmentation (source segments),
dose (marked as SlicerRT marks doses), and MR T1 and T2 on their own grid. The MR is left as acquired
(misregistered, as the scanner gives it) unless ``register_mr`` is set, in which case it is registered
to the CT (masked to the target +- one level) and shown through its transform node -- never resampled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from . import cases as C


@dataclass(frozen=True)
class Sample:
    name: str  # sample-data name (no spaces)
    case: str
    variant: str
    title: str


SAMPLES = tuple(
    Sample(
        f"SpinePhantom{case.capitalize()}{variant.capitalize()}",
        case,
        variant,
        f"Spine SBRT phantom, {case} ({C.case_spec(case).level}), {'passing' if variant == 'pass' else 'failing'} plan",
    )
    for case in C.CASE_NAMES
    for variant in C.VARIANTS
)


def sample(name: str) -> Sample:
    for s in SAMPLES:
        if s.name == name:
            return s
    raise ValueError(f"No phantom sample named {name}; choose one of {', '.join(s.name for s in SAMPLES)}.")


def load_phantom(
    scene,
    case: str = "thoracic",
    variant: str = "pass",
    seed: int = C.DEFAULT_SEED,
    register_mr: bool = False,
    progress=None,
    built: Optional[C.PhantomCase] = None,
) -> Dict[str, object]:
    """Build a phantom (or take the ``built`` one) and add it to ``scene``. Returns the case and its nodes:
    ``case``, ``ct``, ``segmentation``, ``dose``, ``mr_t1``, ``mr_t2`` and (with ``register_mr``)
    ``mr_transform`` and ``registration`` (the ``rigid.RigidResult``)."""
    from ..mrml.case import add_case_nodes
    from ..mrml.volumes import add_volume

    phantom = built if built is not None else C.build_case(case, variant, seed)
    nodes = add_case_nodes(scene, phantom)
    out: Dict[str, object] = {"case": phantom, "ct": nodes.ct, "segmentation": nodes.segmentation, "dose": nodes.dose}
    out["mr_t1"] = add_volume(scene, phantom.mr_t1, phantom.mr_geometry, "MR T1")
    out["mr_t2"] = add_volume(scene, phantom.mr_t2, phantom.mr_geometry, "MR T2")
    if register_mr:
        from ..registration.mrml_transform import apply_to_moving
        from ..registration.rigid import register_rigid

        result = register_rigid(
            phantom.ct,
            phantom.ct_geometry,
            phantom.mr_t1,
            phantom.mr_geometry,
            fixed_mask=phantom.registration_roi,
            progress=progress,
        )
        tnode = apply_to_moving(scene, out["mr_t1"], result.moving_to_fixed, nodes.ct)
        out["mr_t2"].SetAndObserveTransformNodeID(tnode.GetID())  # T1 and T2 share the MR session's frame
        out["mr_transform"] = tnode
        out["registration"] = result
    return out


def samples_to_register(registered) -> Tuple[Sample, ...]:
    """The samples not yet among ``registered`` (the category's ``SampleDataSource`` objects). SampleData's own
    duplicate check compares whole sources, loader function included (``isSampleDataSourceRegistered``,
    SampleData.py 5.6.2 L495-505), so a module reload would list every phantom twice."""
    names = {getattr(source, "sampleName", None) for source in registered}
    return tuple(s for s in SAMPLES if s.name not in names)


def register_with_slicer_sample_data(icon_path: Optional[str] = None) -> None:  # pragma: no cover - needs Slicer
    """Inside desktop Slicer: add the phantoms to the Sample Data module (category "Spine SBRT").

    SampleData calls a source's ``customDownloader(source)`` when its button is clicked, instead of
    downloading (Slicer's SampleData.py, ``setCategoriesFromSampleDataSources``). A source still needs one
    uri and file name (``SampleDataSource`` zips them), so placeholders are given; they are never fetched.
    ``SampleData.downloadSample(name)`` ignores ``customDownloader`` -- call ``load_phantom`` directly in
    scripts and tests. Not exercised here (no desktop Slicer): check in Slicer 5.6-5.10 before release."""
    import SampleData
    import slicer

    if hasattr(SampleData.SampleDataLogic, "registerCustomSampleDataCategory"):
        SampleData.SampleDataLogic.registerCustomSampleDataCategory("SIBSpineSBRT", title="Spine SBRT")
    registered = getattr(slicer.modules, "sampleDataSources", {}).get("SIBSpineSBRT", [])
    for s in samples_to_register(registered):

        def loader(_source, s=s):
            out = load_phantom(slicer.mrmlScene, s.case, s.variant)
            return [v for k, v in out.items() if k not in ("case", "registration")]

        SampleData.SampleDataLogic.registerCustomSampleDataSource(
            category="SIBSpineSBRT",
            sampleName=s.name,
            uris=f"sibspine-phantom:{s.name}",
            fileNames=f"{s.name}.generated",
            nodeNames=None,
            loadFiles=False,
            loadFileType=None,
            thumbnailFileName=icon_path,
            customDownloader=loader,
        )
