"""Multi-view consistency of 2D keypoints: robust triangulation, reprojection errors, outliers, L/R swaps.

Keypoints are in *undistorted* pixels (pinhole model). Each view's tolerance is
relative to the person's size there: ``rel_threshold`` x the diagonal of the box
around its keypoints (at least ``min_threshold_px``), so the same setting works
for 128 px renders and 1024 px captures. For each joint, every pair of views that
see it proposes a 3D point (linear DLT); the proposal with the most views
reprojecting within their tolerance wins, and the joint is re-triangulated on those
inlier views. A view's keypoint is an outlier when its reprojection error exceeds
its tolerance; a view is flagged when at least ``flag_share`` of its present joints
are outliers; a view is a left/right-swap suspect when exchanging its L/R joints
at least halves the median error of those joints.
"""

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from jaxtyping import Bool, Float

from ghnerf.body25 import BODY25_NAMES, JOINT_INDEX as J, NUM_JOINTS
from ghnerf.cameras import Camera
from ghnerf.errors import ConfigError

LR_PAIRS = tuple((J[f"R{p}"], J[f"L{p}"]) for p in ("Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Eye",
                                                   "Ear", "BigToe", "SmallToe", "Heel"))


def _projections(cameras: Sequence[Camera]) -> np.ndarray:
    return np.stack([c.K @ np.concatenate([c.R, c.T[:, None]], axis=1) for c in cameras])


def triangulate_points(P: Float[np.ndarray, "N 3 4"], uv: Float[np.ndarray, "N 2"],
                       weights: Float[np.ndarray, "N"] | None = None) -> Float[np.ndarray, "3"]:
    """Weighted linear (DLT) triangulation of one point seen in N >= 2 views.

    Args:
        P: projection matrices K [R | T].
        uv: pixel observations.
        weights: per-view weights (default 1).
    """
    w = np.ones(len(uv)) if weights is None else np.asarray(weights, dtype=np.float64)
    rows = []
    for Pi, (u, v), wi in zip(P, uv, w):
        rows.append(wi * (u * Pi[2] - Pi[0]))
        rows.append(wi * (v * Pi[2] - Pi[1]))
    _, _, vt = np.linalg.svd(np.asarray(rows))
    X = vt[-1]
    return X[:3] / X[3]


def _reproject(P: np.ndarray, X: np.ndarray) -> np.ndarray:
    h = P @ np.append(X, 1.0)
    return h[..., :2] / h[..., 2:3]


@dataclass(frozen=True, eq=False)
class ConsistencyReport:
    """Consistency of one frame's keypoints over C views.

    Attributes:
        joints3d: (25, 3) robust triangulation, metres; NaN where fewer than 2 views agree.
        reprojection_error: (C, 25) pixels; NaN where the joint is missing in the view or not triangulated.
        outlier: (C, 25) views whose keypoint disagrees with the others.
        per_joint_median_error: (25,) pixels.
        flagged_views: (C,) views where a large share of present joints are outliers.
        swap_suspects: (C,) views whose left/right joints look exchanged.
    """

    joints3d: Float[np.ndarray, "25 3"]
    reprojection_error: Float[np.ndarray, "C 25"]
    outlier: Bool[np.ndarray, "C 25"]
    per_joint_median_error: Float[np.ndarray, "25"]
    flagged_views: Bool[np.ndarray, "C"]
    swap_suspects: Bool[np.ndarray, "C"]

    def to_rows(self) -> list[dict]:
        rows = []
        for c, j in zip(*np.nonzero(np.isfinite(self.reprojection_error))):
            rows.append({"camera": int(c), "joint": BODY25_NAMES[j], "error_px": float(self.reprojection_error[c, j]),
                         "outlier": bool(self.outlier[c, j])})
        return rows

    def summary(self) -> dict:
        err = self.reprojection_error[np.isfinite(self.reprojection_error)]
        return {"mean_error_px": float(err.mean()) if err.size else None,
                "median_error_px": float(np.median(err)) if err.size else None,
                "outlier_rate": float(self.outlier[np.isfinite(self.reprojection_error)].mean()) if err.size else None,
                "flagged_views": np.flatnonzero(self.flagged_views).tolist(),
                "swap_suspects": np.flatnonzero(self.swap_suspects).tolist()}


def _robust_joint(P: np.ndarray, uv: np.ndarray, conf: np.ndarray, threshold: np.ndarray) -> tuple[
        np.ndarray, np.ndarray]:
    """(X, inlier mask) of one joint from the views where it is present (all arrays over those views)."""
    best_inliers, best_err = None, np.inf
    for a, b in itertools.combinations(range(len(uv)), 2):
        X = triangulate_points(P[[a, b]], uv[[a, b]])
        err = np.linalg.norm(_reproject(P, X) - uv, axis=1)
        inliers = err < threshold
        score = (inliers.sum(), -np.sum(np.minimum(err, threshold)))
        if best_inliers is None or score > (best_inliers.sum(), -best_err):
            best_inliers, best_err = inliers, np.sum(np.minimum(err, threshold))
    if best_inliers.sum() < 2:
        return np.full(3, np.nan), np.zeros(len(uv), bool)
    X = triangulate_points(P[best_inliers], uv[best_inliers], conf[best_inliers])
    inliers = np.linalg.norm(_reproject(P, X) - uv, axis=1) < threshold
    if inliers.sum() >= 2 and not np.array_equal(inliers, best_inliers):
        X = triangulate_points(P[inliers], uv[inliers], conf[inliers])
    return X, inliers


def consistency_report(cameras: Sequence[Camera], keypoints: Float[np.ndarray, "C 25 3"],
                       rel_threshold: float = 0.05, min_threshold_px: float = 2.0,
                       flag_share: float = 0.3) -> ConsistencyReport:
    """Triangulate every joint robustly and measure each view's disagreement.

    Args:
        cameras: C pinhole cameras of the undistorted images.
        keypoints: (C, 25, 3) x, y, confidence; confidence <= 0 or NaN xy = missing.
        rel_threshold: outlier tolerance as a share of the person's box diagonal in the view (0.05:
            about half the PCK@0.2 radius, since the torso is roughly half the box diagonal).
        min_threshold_px: lower bound of the tolerance.
        flag_share: share of a view's present joints that must be outliers to flag the view.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim != 3 or kp.shape[1:] != (NUM_JOINTS, 3):
        raise ConfigError(f"keypoints must be (C, {NUM_JOINTS}, 3), got {kp.shape}")
    if len(cameras) != len(kp):
        raise ConfigError(f"{len(cameras)} cameras but keypoints for {len(kp)} views")
    C = len(cameras)
    P = _projections(cameras)
    present = np.isfinite(kp[..., :2]).all(-1) & (kp[..., 2] > 0)
    tol = np.full(C, min_threshold_px)
    for c in range(C):
        if present[c].sum() >= 2:
            xy = kp[c, present[c], :2]
            tol[c] = max(min_threshold_px, rel_threshold * float(np.linalg.norm(xy.max(0) - xy.min(0))))
    joints3d = np.full((NUM_JOINTS, 3), np.nan)
    err = np.full((C, NUM_JOINTS), np.nan)
    outlier = np.zeros((C, NUM_JOINTS), bool)
    for j in range(NUM_JOINTS):
        views = np.flatnonzero(present[:, j])
        if len(views) < 2:
            continue
        X, inl = _robust_joint(P[views], kp[views, j, :2], kp[views, j, 2], tol[views])
        if not np.isfinite(X).all():
            continue
        joints3d[j] = X
        e = np.linalg.norm(_reproject(P[views], X) - kp[views, j, :2], axis=1)
        err[views, j] = e
        outlier[views, j] = e >= tol[views]
    n_present = np.isfinite(err).sum(axis=1)
    flagged = (n_present > 0) & (outlier.sum(axis=1) >= flag_share * np.maximum(n_present, 1))
    swaps = np.zeros(C, bool)
    paired = np.array([j for pair in LR_PAIRS for j in pair])
    for c in range(C):
        swapped = kp[c].copy()
        for r, l in LR_PAIRS:
            swapped[[r, l]] = swapped[[l, r]]
        usable = [j for j in paired if np.isfinite(err[c, j]) and present[c, j] and
                  np.isfinite(swapped[j, :2]).all() and swapped[j, 2] > 0 and np.isfinite(joints3d[j]).all()]
        if len(usable) < 4:
            continue
        e_sw = np.array([np.linalg.norm(_reproject(P[c], joints3d[j]) - swapped[j, :2]) for j in usable])
        e_now = err[c, usable]
        swaps[c] = np.median(e_now) > tol[c] and np.median(e_sw) <= 0.5 * np.median(e_now)
    med = np.array([np.median(err[np.isfinite(err[:, j]), j]) if np.isfinite(err[:, j]).any() else np.nan
                    for j in range(NUM_JOINTS)])
    return ConsistencyReport(joints3d, err, outlier, med, flagged, swaps)
