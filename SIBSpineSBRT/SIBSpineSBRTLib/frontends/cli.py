"""``sibspine``: the review from the command line.

Exit codes: 0 every mandatory limit met; 1 a mandatory limit failed; 2 bad input or an incomplete review
(a structure or the dose missing), with a message naming the problem and the fix.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Optional

from .. import __version__

EXIT_PASS, EXIT_FAIL, EXIT_BAD_INPUT = 0, 1, 2


class UsageError(ValueError):
    """A command-line request that cannot be carried out as given."""


def _parse_roles(items: Optional[List[str]]) -> Dict[str, str]:
    out = {}
    for item in items or []:
        role, sep, name = item.partition("=")
        if not sep or not role or not name:
            raise UsageError(f"--role {item}: use ROLE=SEGMENTNAME, e.g. --role SpinalCord=Cord_MR.")
        out[role.strip()] = name.strip()
    return out


def _exit_code(verdict: str) -> int:
    return {"pass": EXIT_PASS, "fail": EXIT_FAIL}.get(verdict, EXIT_BAD_INPUT)


def _report(ctx, result, out: Path, color: bool) -> int:
    from ..mrml.storage import save_scene_mrb
    from ..report.metrics_json import write_metrics_json
    from ..report.text_table import format_table

    print(format_table(result, color=color))
    metrics = write_metrics_json(result, out / "metrics.json")
    scene_path = save_scene_mrb(ctx.scene, out / "review.mrb")
    print(f"\nWrote {metrics} and {scene_path} (open it in 3D Slicer).")
    return _exit_code(result.verdict)


def cmd_demo(args) -> int:
    from ..mrml.scene import new_scene
    from ..protocol.model import load_protocol
    from ..review.demo import run_demo_review

    ctx = new_scene()
    result, _ = run_demo_review(
        ctx.scene, load_protocol(args.protocol), args.drop_segment or (), _parse_roles(args.role)
    )
    return _report(ctx, result, Path(args.out), args.color)


def cmd_review(args) -> int:
    from ..mrml import storage
    from ..mrml.case import case_input_from_nodes, store_review
    from ..mrml.scene import new_scene
    from ..mrml.volumes import mark_as_dose
    from ..protocol.model import load_protocol
    from ..review.pipeline import review_case

    protocol = load_protocol(args.protocol)
    ctx = new_scene()
    ct = storage.load_volume(ctx.scene, args.ct, "CT") if args.ct else None
    seg = storage.load_segmentation(ctx.scene, args.segmentation)
    dose = storage.load_volume(ctx.scene, args.dose, "Dose")
    if args.dose_unit:
        mark_as_dose(ctx.scene, dose, args.dose_unit)
    data = case_input_from_nodes(
        ctx.scene, seg, dose, args.level, args.name or Path(args.segmentation).name.split(".")[0], reference_volume=ct
    )
    result = review_case(data, protocol, _parse_roles(args.role))
    store_review(ctx.scene, seg, result)
    return _report(ctx, result, Path(args.out), args.color)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sibspine",
        description="Spine SBRT with a simultaneous integrated boost: planning volumes, exact DVH metrics and "
        "protocol review.",
    )
    p.add_argument("--version", action="version", version=f"SIBSpineSBRT {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp):
        sp.add_argument(
            "--out", default="out/review", help="output folder for metrics.json and review.mrb (default: %(default)s)"
        )
        sp.add_argument(
            "--protocol", default=None, help="shipped protocol id or a protocol JSON file (default: mitsuyoshi2025)"
        )
        sp.add_argument(
            "--role",
            action="append",
            metavar="ROLE=SEGMENT",
            help="use SEGMENT for protocol structure ROLE (repeatable)",
        )
        sp.add_argument("--color", action="store_true", help="colour the status column")

    d = sub.add_parser("demo", help="review the built-in synthetic thoracic (T8) case")
    common(d)
    d.set_defaults(out="out/demo", func=cmd_demo)
    d.add_argument(
        "--drop-segment",
        action="append",
        metavar="NAME",
        help="leave a segment out (to see how a missing structure is reported)",
    )

    r = sub.add_parser("review", help="review a plan from Slicer files (.seg.nrrd segmentation, dose volume)")
    common(r)
    r.set_defaults(func=cmd_review)
    r.add_argument("--segmentation", required=True, help="segmentation (.seg.nrrd)")
    r.add_argument("--dose", required=True, help="dose volume (.nrrd, ...)")
    r.add_argument(
        "--dose-unit",
        choices=["Gy", "cGy"],
        help="unit of the dose file's values (required: volume files carry no dose unit)",
    )
    r.add_argument(
        "--ct",
        help="planning CT volume: its grid is used for the segments (default: the segmentation's reference geometry)",
    )
    r.add_argument("--level", required=True, help="vertebral level of the target, C1-S5 (e.g. T8)")
    r.add_argument(
        "--name", help="case name shown in the outputs (default: from the segmentation file; no patient name)"
    )
    return p


def main(argv: Optional[List[str]] = None) -> int:
    from ..dose.grid import DoseError
    from ..geometry.grid import GeometryError
    from ..mrml.segmentations import SegmentationError
    from ..mrml.storage import StorageError
    from ..protocol.model import ProtocolError
    from ..review.demo import DemoError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (UsageError, DemoError, ProtocolError, DoseError, GeometryError, SegmentationError, StorageError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
