"""Binary masks with their geometry, and the set operations planning volumes are made of.

A ``Mask`` voxel stands for a cube of tissue (the voxel's full extent), which is how the margin and
DVH engines read it. Operations never modify their inputs: every result is a new array.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from .grid import GeometryError, ImageGeometry


@dataclass(frozen=True, eq=False)
class Mask:
    """A boolean ``[k, j, i]`` array on an ``ImageGeometry``."""

    array: np.ndarray
    geometry: ImageGeometry
    name: str = ""

    def __post_init__(self) -> None:
        arr = np.asarray(self.array)
        if arr.shape != self.geometry.shape:
            raise GeometryError(
                f"Mask {self.name or '(unnamed)'} has shape {arr.shape} but its grid is {self.geometry.shape}."
            )
        arr = np.array(arr, dtype=bool, order="C")  # a copy, C-ordered: set operations on views are 30x slower
        arr.setflags(write=False)  # results are new masks; nobody edits a mask in place
        object.__setattr__(self, "array", arr)

    # -- measures -----------------------------------------------------------------------------------
    @property
    def voxel_count(self) -> int:
        return int(np.count_nonzero(self.array))

    @property
    def volume_cc(self) -> float:
        return self.voxel_count * self.geometry.voxel_volume_cc

    @property
    def is_empty(self) -> bool:
        return not self.array.any()

    def bounding_box(self) -> Optional[Tuple[Tuple[int, int, int], Tuple[int, int, int]]]:
        """(lo, hi) numpy indices with ``lo <= index < hi`` of the set voxels, or None when empty."""
        if self.is_empty:
            return None
        lo, hi = [], []
        for axis in range(3):
            other = tuple(a for a in range(3) if a != axis)
            idx = np.flatnonzero(self.array.any(axis=other))
            lo.append(int(idx[0]))
            hi.append(int(idx[-1]) + 1)
        return tuple(lo), tuple(hi)

    def slice_axis(self) -> int:
        """The numpy axis (0=k, 1=j, 2=i) whose direction is closest to patient superior-inferior."""
        cosines = np.abs(self.geometry.direction_matrix[2, :])  # S component of the i, j, k directions
        return 2 - int(np.argmax(cosines))

    def touched_end_slices(self) -> Tuple[str, ...]:
        """Which end slices of its grid along superior-inferior the mask touches ("first", "last"): a
        structure there was probably cut by the image or segmentation extent."""
        axis = self.slice_axis()
        n = self.array.shape[axis]
        ends = []
        if self.array.take(0, axis=axis).any():
            ends.append("first")
        if n > 1 and self.array.take(n - 1, axis=axis).any():
            ends.append("last")
        return tuple(ends)

    def centroid_ras(self) -> np.ndarray:
        k, j, i = np.nonzero(self.array)
        if k.size == 0:
            raise ValueError(f"Mask {self.name or '(unnamed)'} is empty: it has no centroid.")
        return self.geometry.ijk_to_ras_points(np.array([[i.mean(), j.mean(), k.mean()]]))[0]

    def renamed(self, name: str) -> Mask:
        return Mask(self.array, self.geometry, name)

    # -- set operations -----------------------------------------------------------------------------
    def _check_same_grid(self, other: Mask) -> None:
        if not self.geometry.same_grid(other.geometry):
            raise GeometryError(
                f"Masks {self.name or '(unnamed)'} and {other.name or '(unnamed)'} lie on different grids "
                f"({self.geometry.describe()} vs {other.geometry.describe()}); resample one onto the other first."
            )

    def union(self, other: Mask, name: str = "") -> Mask:
        self._check_same_grid(other)
        return Mask(self.array | other.array, self.geometry, name)

    def intersect(self, other: Mask, name: str = "") -> Mask:
        self._check_same_grid(other)
        return Mask(self.array & other.array, self.geometry, name)

    def subtract(self, other: Mask, name: str = "") -> Mask:
        self._check_same_grid(other)
        return Mask(self.array & ~other.array, self.geometry, name)


def union_all(masks, name: str = "") -> Mask:
    """Union of one or more masks on the same grid."""
    masks = list(masks)
    if not masks:
        raise ValueError("union_all needs at least one mask.")
    out = masks[0]
    for m in masks[1:]:
        out = out.union(m)
    return out.renamed(name or out.name)
