"""Edge labels for DML-CSR's two auxiliary tasks, made from a parsing label map.

The paper's 4-neighbour rule: a pixel is an edge pixel when one of its four neighbours
(up, down, left, right) carries a different label, so both sides of every boundary are
marked (a 2-pixel band). Ignored pixels (255: outside the image after the augmentation
warp, or unlabelled) neither are nor make edges and stay 255 in both edge maps, so the
edge losses skip them as the parsing loss does.

The binary map is 1 on edges and 0 elsewhere. The category map holds one edge map per
class in one array: the pixel's own class on its edges, 0 elsewhere (so edges of the
background class read 0, like non-edges, as in the official training targets).

Edges are computed on the fly, after the augmentation warp, at the network's input size:
that keeps them aligned with the warped labels whatever the rotation, and costs about 2 ms
for a 473x473 map (against ~40 ms to read and warp the sample), so no cache is needed.
The official code instead warps pre-computed edge PNGs bilinearly with the image.
"""

from __future__ import annotations

import numpy as np

IGNORE_LABEL = 255


def _differs(a: np.ndarray, b: np.ndarray, ignore: int) -> np.ndarray:
    return (a != b) & (a != ignore) & (b != ignore)


def binary_edges(labels: np.ndarray, ignore: int = IGNORE_LABEL) -> np.ndarray:
    """H x W label map -> H x W uint8: 1 on edges, 0 off edges, ``ignore`` where ignored."""
    if labels.ndim != 2:
        raise ValueError(f"binary_edges expects one H x W label map, got shape {labels.shape}")
    edge = np.zeros(labels.shape, bool)
    vertical = _differs(labels[1:, :], labels[:-1, :], ignore)
    horizontal = _differs(labels[:, 1:], labels[:, :-1], ignore)
    edge[1:, :] |= vertical
    edge[:-1, :] |= vertical
    edge[:, 1:] |= horizontal
    edge[:, :-1] |= horizontal
    out = edge.astype(np.uint8)
    out[labels == ignore] = ignore
    return out


def category_edges(labels: np.ndarray, ignore: int = IGNORE_LABEL,
                   binary: np.ndarray | None = None) -> np.ndarray:
    """H x W label map -> H x W uint8: the class id on its edge pixels, 0 elsewhere."""
    binary = binary_edges(labels, ignore) if binary is None else binary
    out = np.where(binary == 1, labels, 0).astype(np.uint8)
    out[labels == ignore] = ignore
    return out


def edge_maps(labels: np.ndarray, ignore: int = IGNORE_LABEL) -> tuple[np.ndarray, np.ndarray]:
    """(binary, category) edge maps of one label map, sharing the 4-neighbour pass."""
    binary = binary_edges(labels, ignore)
    return binary, category_edges(labels, ignore, binary)
