"""Where the MR goes in the fused MR/CT views, and a sentence saying how it got there: through a given
MR-to-CT transform, by our rigid registration around the target, or as stored (sharing the CT's patient
coordinates). The same choice for the Slicer module's Register button and ``sibspine review --mr``."""

from __future__ import annotations

from typing import Mapping, Optional, Tuple

import numpy as np

from ..protocol.model import Protocol, ProtocolError
from ..protocol.roles import resolve_roles

TARGET_ROLES = ("GTV", "CTV")  # the registration region is built around the first of these that exists


def registration_region(ct_node, segmentation, protocol: Protocol, role_overrides: Optional[Mapping[str, str]] = None):
    """Bool array on the CT grid: the target (GTV, else CTV) grown by about one vertebra above and below
    (``rigid.box_around``), or None when the segmentation has neither."""
    from ..mrml.segmentations import read_segments, segment_infos
    from ..mrml.volumes import volume_geometry
    from ..registration.rigid import box_around

    infos = segment_infos(segmentation)
    try:
        resolution = resolve_roles(protocol, list(infos), dict(role_overrides or {}), infos)
    except ProtocolError:
        return None
    geometry = volume_geometry(ct_node)
    for role in TARGET_ROLES:
        segment = resolution.get(role)
        if segment:
            mask = read_segments(segmentation, [segment], geometry)[segment]
            if not mask.is_empty:
                return box_around(mask.array, geometry)
    return None


def place_mr(
    scene,
    ct_node,
    mr_node,
    transform_node=None,
    register: bool = False,
    region: Optional[np.ndarray] = None,
    progress=None,
) -> Tuple[np.ndarray, str]:
    """Put ``mr_node`` where the fused views show it; returns (MR-to-CT 4x4 RAS, what was done).

    ``transform_node``: a linear MR-to-CT transform to use as it is. ``register``: our rigid registration
    (mutual information, restricted to ``region`` when given). Neither: the MR is used as stored."""
    from ..mrml.volumes import transform_problem
    from ..registration.mrml_transform import node_to_world, register_volume_nodes

    if transform_node is not None and register:
        raise ValueError("Give an MR-to-CT transform or ask for a registration, not both.")
    problem = transform_problem(ct_node, "CT")
    if problem:
        raise ValueError(problem)
    name = mr_node.GetName()
    label = name if name.upper().startswith("MR") else f"MR {name}"
    if transform_node is not None:
        if not transform_node.IsTransformToWorldLinear():
            raise ValueError(f"The transform {transform_node.GetName()} is not linear: the MR would be warped.")
        mr_node.SetAndObserveTransformNodeID(transform_node.GetID())
        how = f"{label}: shown through the given transform {transform_node.GetName()}."
    elif register:
        result, _ = register_volume_nodes(scene, ct_node, mr_node, fixed_mask=region, progress=progress)
        where = "around the target" if region is not None else "on the whole images (no GTV or CTV found)"
        how = (
            f"{label}: registered to the CT (rigid, mutual information, {where}; "
            f"{result.elapsed_s:.1f} s). Check the fusion image."
        )
    else:
        how = (
            f"{label}: shown as stored, so it must share the CT's patient coordinates. Give the MR-to-CT "
            "transform, or ask for a registration, if it does not."
        )
    return node_to_world(mr_node), how
