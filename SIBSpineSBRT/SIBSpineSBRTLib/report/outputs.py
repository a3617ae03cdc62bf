"""Everything a review writes to its output folder, the same for the CLI, the headless Slicer run and batch
work: metrics.json, metrics.csv, report.html and report.pdf (with slices when a CT is given) and optionally
the scene."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Mapping, Optional

from ..review.pipeline import ReviewResult
from ..review.readiness import REPORT, missing_packages


class ReportDependencyError(RuntimeError):
    pass


def write_review_outputs(
    result: ReviewResult,
    out,
    scene=None,
    ct_node=None,
    mr_node=None,
    mr_to_ct=None,
    report: bool = True,
    save_scene: bool = False,
    input_files: Optional[Mapping[str, str]] = None,
) -> Dict[str, Path]:
    """Write the outputs into folder ``out``, metrics.json last; returns them by kind. ``mr_to_ct`` (4x4) maps
    MR RAS to CT RAS; ``input_files`` (path -> sha256) goes into metrics.json. Callers that publish into a
    user's folder write into an ``output_folder.OutputFolder`` stage."""
    from .metrics_csv import write_metrics_csv
    from .metrics_json import write_metrics_json

    out = Path(out)
    need = missing_packages(REPORT) if report else []
    if need:
        raise ReportDependencyError(
            f"The HTML and PDF reports need {', '.join(need)}, which this Python cannot import. In Slicer run "
            f"slicer.util.pip_install('{' '.join(need)}'); elsewhere pip install {' '.join(need)}. Or skip the "
            "reports (--no-report); metrics.json and metrics.csv need nothing more."
        )
    written = {"csv": write_metrics_csv(result, out / "metrics.csv")}
    if report:
        images = report_images(result, ct_node, mr_node, mr_to_ct)
        written["report"] = write_report_file(result, out / "report.html", images=images)
        written["pdf"] = write_report_file(result, out / "report.pdf", images=images)
    if save_scene and scene is not None:
        from ..mrml.storage import save_scene_mrb

        written["scene"] = Path(save_scene_mrb(scene, out / "review.mrb"))
    written["metrics"] = write_metrics_json(result, out / "metrics.json", input_files)
    return written


def report_images(result, ct_node=None, mr_node=None, mr_to_ct=None) -> Dict[str, bytes]:
    """The report's PNGs: the DVH, and slices when the CT node is given (the MR fused through ``mr_to_ct``)."""
    import numpy as np

    from ..mrml.volumes import transform_problem, volume_array, volume_geometry
    from .html_report import ImageInput, make_images

    problem = transform_problem(ct_node, "CT") if ct_node is not None else None
    if problem:
        raise ValueError(problem)

    ct = None if ct_node is None else ImageInput(volume_array(ct_node), volume_geometry(ct_node))
    mr: Optional[ImageInput] = None
    if mr_node is not None and ct is not None:
        to_mr = None if mr_to_ct is None else np.linalg.inv(np.asarray(mr_to_ct, float))
        mr = ImageInput(volume_array(mr_node).astype(float), volume_geometry(mr_node), to_mr)
    return make_images(result, ct, mr)


def write_report_file(
    result, path, ct_node=None, mr_node=None, mr_to_ct=None, images: Optional[Dict[str, bytes]] = None
) -> Path:
    """The report at ``path``: PDF when it ends in .pdf, HTML for .html or .htm. ``images`` from
    ``report_images``, or made here from the nodes (``mr_to_ct``, 4x4, maps MR RAS to CT RAS)."""
    from .html_report import build_report
    from .pdf_report import write_pdf

    path = Path(path)
    if path.suffix.lower() not in (".pdf", ".html", ".htm"):
        raise ValueError(f"Name the report file with .pdf or .html (the kind of report); got {path.name!r}.")
    if images is None:
        images = report_images(result, ct_node, mr_node, mr_to_ct)
    if path.suffix.lower() == ".pdf":
        return write_pdf(result, path, images)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(build_report(result, images), encoding="utf-8")
    return path
