"""Choosing source views for a target view (as ENeRF's ZJU-MoCap loader does).

Candidates are ranked by camera-centre distance to the target, keeping only those
among the ``2k`` closest in viewing direction (Frobenius distance of rotations).
The target camera itself is never its own source.
"""

from collections.abc import Sequence

import numpy as np

from ghnerf.base.cameras import Camera
from ghnerf.base.errors import ConfigError

MIN_SOURCE_VIEWS = 2  # ENeRF's minimum: the variance cost volume needs two views (it pools over any number)


def source_view_count(wanted: int, available: int, fewest: int = MIN_SOURCE_VIEWS) -> int | None:
    """How many source views a target gets when ``available`` cameras can serve as its sources.

    ``wanted``, or fewer when fewer cameras are available (down to ``fewest``, by default
    :data:`MIN_SOURCE_VIEWS`, as ENeRF mixes 2 and 3); None when too few are.
    """
    count = min(wanted, available)
    return count if count >= min(wanted, fewest) else None


def nearest_source_views(cameras: Sequence[Camera], target: int, candidates: Sequence[int], k: int) -> list[int]:
    """Indices of the ``k`` best source cameras for ``cameras[target]`` among ``candidates``.

    Args:
        cameras: every camera of the sequence.
        target: index of the target camera.
        candidates: indices allowed as sources (e.g. the training cameras).
        k: number of source views wanted.
    Returns:
        ``k`` indices, nearest first.
    Raises:
        ConfigError: fewer than ``k`` candidates (the target excluded).
    """
    pool = [c for c in candidates if c != target]
    if len(pool) < k:
        raise ConfigError(f"need {k} source views for camera {target} but only {len(pool)} candidates: {pool}")
    tgt = cameras[target]
    centres = np.stack([cameras[c].center for c in pool])
    c2w_rot = np.stack([cameras[c].R.T for c in pool])
    dist = np.linalg.norm(centres - tgt.center, axis=1)
    dir_dist = np.linalg.norm(c2w_rot - tgt.R.T, axis=(1, 2))
    near_dir = set(np.argsort(dir_dist, kind="stable")[: 2 * k].tolist())
    ranked = [pool[i] for i in np.argsort(dist, kind="stable") if i in near_dir]
    return ranked[:k]
