"""Slicer file formats through MRML storage nodes: .nrrd volumes, .seg.nrrd segmentations, .mrb scenes."""

from __future__ import annotations

import os
from pathlib import Path


class StorageError(OSError):
    """A file could not be read or written as a Slicer file."""


def _write(scene, node, storage, path) -> str:
    path = str(Path(path).resolve())
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    scene.AddNode(storage)
    storage.SetFileName(path)
    if not storage.WriteData(node):
        scene.RemoveNode(storage)
        raise StorageError(f"Could not write {node.GetName()} to {path}.")
    node.SetAndObserveStorageNodeID(storage.GetID())
    return path


def save_volume(scene, node, path) -> str:
    """Write a volume (scalar or labelmap) to ``.nrrd`` (or another ITK format by extension)."""
    import slicer

    return _write(scene, node, slicer.vtkMRMLVolumeArchetypeStorageNode(), path)


def _read(scene, node, storage, path, name: str, what: str, usable, unreadable: str):
    """Read ``path`` into the new ``node`` through ``storage``; on failure the scene is left as it was."""
    path = str(Path(path).resolve())
    if not os.path.isfile(path):
        raise StorageError(f"{what} file {path} does not exist.")
    node.SetName(name or Path(path).name.split(".")[0])
    scene.AddNode(node)
    scene.AddNode(storage)
    storage.SetFileName(path)
    node.SetAndObserveStorageNodeID(storage.GetID())
    if not storage.ReadData(node) or not usable(node):
        scene.RemoveNode(node)
        scene.RemoveNode(storage)
        raise StorageError(f"{path} {unreadable}")
    return node


def load_volume(scene, path, name: str = "", labelmap: bool = False):
    import slicer

    node = slicer.vtkMRMLLabelMapVolumeNode() if labelmap else slicer.vtkMRMLScalarVolumeNode()
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    _read(
        scene,
        node,
        storage,
        path,
        name,
        "Volume",
        lambda n: n.GetImageData() is not None,
        "is not a readable volume file (NRRD, NIfTI, MHA...).",
    )
    node.CreateDefaultDisplayNodes()
    return node


def save_transform(scene, node, path) -> str:
    """Write a transform to ``.h5``, ``.tfm`` or ``.txt`` (ITK transform files, as Slicer saves them)."""
    import slicer

    return _write(scene, node, slicer.vtkMRMLTransformStorageNode(), path)


def load_transform(scene, path, name: str = ""):
    """A linear transform node read from an ITK transform file (``.h5``, ``.tfm``, ``.txt``)."""
    import slicer

    return _read(
        scene,
        slicer.vtkMRMLLinearTransformNode(),
        slicer.vtkMRMLTransformStorageNode(),
        path,
        name,
        "Transform",
        lambda n: True,
        "is not a readable linear transform file (.h5, .tfm or .txt, as Slicer saves them).",
    )


def save_segmentation(scene, node, path) -> str:
    """Write a segmentation to ``.seg.nrrd`` (Slicer's format: segments, names, colours, tags, geometry)."""
    import slicer

    if not str(path).endswith(".seg.nrrd"):
        raise StorageError(f"Segmentation file name must end with .seg.nrrd; got {path}.")
    return _write(scene, node, slicer.vtkMRMLSegmentationStorageNode(), path)


def load_segmentation(scene, path, name: str = ""):
    import slicer

    node = _read(
        scene,
        slicer.vtkMRMLSegmentationNode(),
        slicer.vtkMRMLSegmentationStorageNode(),
        path,
        name,
        "Segmentation",
        lambda n: n.GetSegmentation().GetNumberOfSegments() > 0,
        "is not a readable segmentation (.seg.nrrd) or holds no segments.",
    )
    node.CreateDefaultDisplayNodes()
    return node


def save_scene_mrb(scene, path) -> str:
    """Write the whole scene with its data as a Slicer ``.mrb`` bundle that desktop Slicer opens."""
    path = str(Path(path).resolve())
    if not path.endswith(".mrb"):
        raise StorageError(f"Scene bundle name must end with .mrb; got {path}.")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    from vtkmodules.vtkCommonCore import vtkOutputWindow

    window = vtkOutputWindow.GetInstance()
    mode = window.GetDisplayMode()
    window.SetDisplayModeToNever()  # slicer-core 5.11 logs an Info line per zipped file
    try:
        ok = scene.WriteToMRB(path)
    finally:
        window.SetDisplayMode(mode)
    if not ok:
        raise StorageError(f"Could not write the scene to {path}.")
    return path


def load_scene_mrb(ctx, path) -> None:
    """Read a ``.mrb`` into the standalone scene ``ctx`` (see ``scene.new_scene``)."""
    path = str(Path(path).resolve())
    if not os.path.isfile(path):
        raise StorageError(f"Scene file {path} does not exist.")
    ctx.enable_mrb_reading()
    if not ctx.scene.ReadFromMRB(path):
        raise StorageError(f"{path} is not a readable Slicer scene bundle (.mrb).")
