"""The registration result in MRML: a vtkMRMLLinearTransformNode set as the MR volume's parent transform.

Slicer's linear transform nodes store a "to parent" matrix: a point given in the coordinates of a node
under the transform is at ``MatrixTransformToParent @ p`` in the parent's (here: world, the CT's)
coordinates. ``rigid.RigidResult.moving_to_fixed`` maps MR points to CT points, so it *is* the MR
volume's "to parent" matrix: with it the MR is displayed on top of the CT, fused, while its voxels and
its IJK-to-RAS matrix stay as acquired. Nothing is resampled. ``harden`` bakes the transform into the
volume's geometry only when the user asks for it (for a linear transform Slicer then rewrites the
IJK-to-RAS matrix; the voxel values are still not resampled).

Only this module touches MRML for registration; ``rigid`` works on arrays.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from ..geometry.grid import ImageGeometry
from ..mrml.volumes import numpy_matrix4, vtk_matrix4
from .rigid import ProgressCallback, RigidResult, RigidSettings, register_rigid


def _check_rigid(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, float)
    if m.shape != (4, 4) or not np.allclose(m[3], [0, 0, 0, 1]):
        raise ValueError("A rigid transform must be a 4x4 homogeneous matrix.")
    r = m[:3, :3]
    if not np.allclose(r.T @ r, np.eye(3), atol=1e-5) or np.linalg.det(r) <= 0:
        raise ValueError("The matrix is not a rigid (rotation + translation) transform.")
    return m


def new_transform_node(scene, moving_to_fixed: np.ndarray, name: str = "MR to CT (rigid)"):
    """A new vtkMRMLLinearTransformNode whose "to parent" matrix is ``moving_to_fixed`` (4x4 RAS)."""
    import slicer

    node = slicer.vtkMRMLLinearTransformNode()
    node.SetName(name)
    scene.AddNode(node)
    node.SetMatrixTransformToParent(vtk_matrix4(_check_rigid(moving_to_fixed)))
    return node


def transform_to_parent(node) -> np.ndarray:
    """The "to parent" matrix of a linear transform node (4x4 numpy)."""
    from vtkmodules.vtkCommonMath import vtkMatrix4x4

    m = vtkMatrix4x4()
    node.GetMatrixTransformToParent(m)
    return numpy_matrix4(m)


def node_to_world(node) -> np.ndarray:
    """4x4 mapping a node's own RAS coordinates to world RAS (identity without a parent transform).
    Raises ValueError when the chain of parent transforms is not linear."""
    from vtkmodules.vtkCommonMath import vtkMatrix4x4

    parent = node.GetParentTransformNode()
    if parent is None:
        return np.eye(4)
    if not parent.IsTransformToWorldLinear():
        raise ValueError(f"{node.GetName()} is under a non-linear transform; harden or remove it first.")
    m = vtkMatrix4x4()
    parent.GetMatrixTransformToWorld(m)
    return numpy_matrix4(m)


def apply_to_moving(
    scene,
    moving_node,
    moving_to_fixed: np.ndarray,
    fixed_node=None,
    transform_node=None,
    name: str = "MR to CT (rigid)",
):
    """Show ``moving_node`` (the MR) registered: set (or create) a linear transform node holding
    ``moving_to_fixed`` and make it the MR's parent transform. The MR's voxels and IJK-to-RAS matrix are
    not changed. When ``fixed_node`` itself sits under a linear transform, the MR's transform node is
    placed under the same parent so the MR follows the CT. Returns the transform node."""
    m = _check_rigid(moving_to_fixed)
    if transform_node is None:
        transform_node = new_transform_node(scene, m, name)
    else:
        transform_node.SetMatrixTransformToParent(vtk_matrix4(m))
    fixed_parent = fixed_node.GetParentTransformNode() if fixed_node is not None else None
    if fixed_parent is not None and fixed_parent is not transform_node:
        transform_node.SetAndObserveTransformNodeID(fixed_parent.GetID())
    moving_node.SetAndObserveTransformNodeID(transform_node.GetID())
    return transform_node


def harden(moving_node) -> None:
    """Bake the MR's parent transform into its geometry, on explicit request only. For a linear
    transform Slicer rewrites the IJK-to-RAS matrix (the image becomes oblique); voxels are not resampled."""
    if moving_node.GetParentTransformNode() is None:
        return
    if not moving_node.GetParentTransformNode().IsTransformToWorldLinear():
        raise ValueError("Only linear transforms are hardened here; the MR would have to be resampled.")
    moving_node.HardenTransform()


def register_volume_nodes(
    scene,
    fixed_node,
    moving_node,
    fixed_mask: Optional[np.ndarray] = None,
    settings: Optional[RigidSettings] = None,
    progress: Optional[ProgressCallback] = None,
    transform_node=None,
    apply: bool = True,
) -> Tuple[RigidResult, object]:
    """Register an MR volume node to a CT volume node and (``apply``) show it registered.

    ``fixed_mask``: bool array on the CT node's grid (e.g. the target vertebra +- one level). The MR's
    current parent transform, if any and linear, is the starting estimate (as the user left it); the
    result replaces it. Returns (result, transform node or None)."""
    from ..mrml.volumes import volume_array, volume_geometry

    fixed_geometry: ImageGeometry = volume_geometry(fixed_node)
    moving_geometry: ImageGeometry = volume_geometry(moving_node)
    fixed_world = node_to_world(fixed_node)
    initial = np.linalg.inv(fixed_world) @ node_to_world(moving_node)  # MR -> CT (node coordinates)
    result = register_rigid(
        volume_array(fixed_node),
        fixed_geometry,
        volume_array(moving_node),
        moving_geometry,
        fixed_mask=fixed_mask,
        initial_moving_to_fixed=initial,
        settings=settings,
        progress=progress,
    )
    node = None
    if apply:
        existing = moving_node.GetParentTransformNode()
        if transform_node is None and existing is not None and existing.IsLinear():
            transform_node = existing
            if existing.GetParentTransformNode() is not None:
                transform_node = None  # keep the user's chain intact: make a new node
        node = apply_to_moving(scene, moving_node, result.moving_to_fixed, fixed_node, transform_node)
    return result, node
