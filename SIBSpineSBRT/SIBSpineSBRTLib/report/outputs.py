"""Everything a review writes to its output folder, the same for the CLI, the headless Slicer run and batch
work: metrics.json, metrics.csv, report.html (with slices when a CT is given) and optionally the scene."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional

from ..review.pipeline import ReviewResult


def write_review_outputs(
    result: ReviewResult,
    out,
    scene=None,
    ct_node=None,
    mr_node=None,
    mr_to_ct=None,
    report: bool = True,
    save_scene: bool = False,
) -> Dict[str, Path]:
    """Write the outputs into folder ``out``; returns them by kind. ``mr_to_ct`` (4x4) maps MR RAS to CT RAS."""
    from .metrics_csv import write_metrics_csv
    from .metrics_json import write_metrics_json

    out = Path(out)
    written = {
        "metrics": write_metrics_json(result, out / "metrics.json"),
        "csv": write_metrics_csv(result, out / "metrics.csv"),
    }
    if report:
        written["report"] = write_report_file(result, out / "report.html", ct_node, mr_node, mr_to_ct)
    if save_scene and scene is not None:
        from ..mrml.storage import save_scene_mrb

        written["scene"] = Path(save_scene_mrb(scene, out / "review.mrb"))
    return written


def write_report_file(result, path, ct_node=None, mr_node=None, mr_to_ct=None) -> Path:
    """report.html at ``path``, with slices when the CT node is given (and the MR fused through ``mr_to_ct``)."""
    import numpy as np

    from ..mrml.volumes import volume_array, volume_geometry
    from .html_report import ImageInput, write_report

    ct = None if ct_node is None else ImageInput(volume_array(ct_node), volume_geometry(ct_node))
    mr: Optional[ImageInput] = None
    if mr_node is not None and ct is not None:
        to_mr = None if mr_to_ct is None else np.linalg.inv(np.asarray(mr_to_ct, float))
        mr = ImageInput(volume_array(mr_node).astype(float), volume_geometry(mr_node), to_mr)
    return write_report(result, path, ct, mr).path
