"""Multi-view consistency of 2D pose-teacher keypoints: robust triangulation, reprojection errors, outliers, L/R swaps.

A pose teacher labels every view of a frame on its own; with calibrated cameras
the views must agree on one 3D skeleton. This module triangulates each BODY_25
joint robustly and reports, per camera and joint, how far the teacher's keypoint
is from the reprojection of that 3D point, so bad labels are visible before a
student trains on them.

Keypoints are in *undistorted* pixels, so the pinhole model ``K [R | T]`` is used
and the cameras' distortion ``D`` is ignored.

Tolerance: a view's keypoint is an inlier when its reprojection error is below
that view's tolerance, by default ``rel_threshold`` (0.05) x the diagonal of the
box around the view's present keypoints, but at least ``min_threshold_px`` (2 px).
Being relative to the person's size in the view, the same setting works for
128 px renders and 1024 px captures; 0.05 of the box diagonal is about half the
PCK@0.2 radius (the torso is roughly half the diagonal). ``threshold_px`` sets an
absolute tolerance for every view instead.

Per joint, every pair of views that see it proposes a 3D point (linear DLT); the
proposal with the most inlier views wins (ties: smallest truncated error), and the
joint is re-triangulated on those inliers (confidence-weighted DLT, then
Gauss-Newton on the reprojection error). A view is flagged when at least
``flag_share`` of its triangulated joints are outliers, and is a left/right-swap
suspect when its paired L/R joints disagree (median error above its tolerance)
and exchanging them cuts that median to ``swap_gain`` of it or less.
"""

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from jaxtyping import Bool, Float, Int

from ghnerf.base.body25 import BODY25_LR_PAIRS, BODY25_NAMES, NUM_JOINTS
from ghnerf.base.cameras import Camera
from ghnerf.base.errors import ConfigError
from ghnerf.base.tolerances import REL_THRESHOLD


_MIN_SWAP_JOINTS = 4  # paired joints a view needs (present, triangulated) for the swap test


@dataclass(frozen=True, eq=False)
class ConsistencyReport:
    """Consistency of one frame's keypoints over C views.

    Attributes:
        joints3d: (25, 3) robust triangulation, metres; NaN where fewer than 2 views see the joint or
            no 2 views agree.
        reprojection_error: (C, 25) pixels; NaN where the joint is missing in the view or not triangulated.
        outlier: (C, 25) the view's keypoint is farther than the view's tolerance from the reprojection.
        per_joint_median_error: (25,) median over views of ``reprojection_error``, pixels; NaN if none.
        flagged_views: (F,) indices of cameras where at least ``flag_share`` of the triangulated joints
            are outliers, ascending.
        swap_suspects: (C,) views whose left/right joints look exchanged.
        threshold_px: (C,) each view's outlier tolerance in pixels.
    """

    joints3d: Float[np.ndarray, "25 3"]
    reprojection_error: Float[np.ndarray, "C 25"]
    outlier: Bool[np.ndarray, "C 25"]
    per_joint_median_error: Float[np.ndarray, "25"]
    flagged_views: Int[np.ndarray, "F"]
    swap_suspects: Bool[np.ndarray, "C"]
    threshold_px: Float[np.ndarray, "C"]

    def to_rows(self) -> list[dict]:
        """One plain row per measured (camera, joint): camera (int), joint (BODY_25 name), error_px, outlier.

        Returns:
            Rows in camera-major order; missing or untriangulated joints have no row.
        """
        cams, joints = np.nonzero(np.isfinite(self.reprojection_error))
        return [{"camera": int(c), "joint": BODY25_NAMES[j], "error_px": float(self.reprojection_error[c, j]),
                 "outlier": bool(self.outlier[c, j])} for c, j in zip(cams, joints)]

    def summary(self) -> dict:
        """Short JSON-able summary.

        Returns:
            mean_error_px, median_error_px and outlier_rate over measured (camera, joint) pairs (None when
            nothing was measured), flagged_views and swap_suspects as lists of camera indices.
        """
        measured = np.isfinite(self.reprojection_error)
        err = self.reprojection_error[measured]
        return {"mean_error_px": float(err.mean()) if err.size else None,
                "median_error_px": float(np.median(err)) if err.size else None,
                "outlier_rate": float(self.outlier[measured].mean()) if err.size else None,
                "flagged_views": [int(c) for c in self.flagged_views],
                "swap_suspects": np.flatnonzero(self.swap_suspects).tolist()}


def _projection_matrices(cameras: Sequence[Camera]) -> Float[np.ndarray, "N 3 4"]:
    """Pinhole ``K [R | T]`` of each camera, scaled so that row 3 gives the depth in metres."""
    P = []
    for i, cam in enumerate(cameras):
        K, R, T = (np.asarray(a, dtype=np.float64) for a in (cam.K, cam.R, cam.T))
        if K.shape != (3, 3) or R.shape != (3, 3) or T.shape != (3,):
            raise ConfigError(f"camera {i}: K and R must be (3, 3) and T (3,), got {K.shape}, {R.shape}, {T.shape}")
        Pi = K @ np.concatenate([R, T[:, None]], axis=1)
        if not np.isfinite(Pi).all() or np.linalg.norm(Pi[2, :3]) == 0:
            raise ConfigError(f"camera {i}: K, R or T is not finite or degenerate")
        P.append(Pi / np.linalg.norm(Pi[2, :3]))
    return np.stack(P) if P else np.zeros((0, 3, 4))


def _dlt(P: Float[np.ndarray, "*B V 3 4"], uv: Float[np.ndarray, "*B V 2"],
         w: Float[np.ndarray, "*B V"]) -> Float[np.ndarray, "*B 3"]:
    """Weighted DLT of a batch of points, each from V views."""
    rows = np.concatenate([uv[..., 0:1] * P[..., 2, :] - P[..., 0, :],
                           uv[..., 1:2] * P[..., 2, :] - P[..., 1, :]], axis=-2)  # (*B, 2V, 4)
    rows = rows * np.concatenate([w, w], axis=-1)[..., None]
    _, _, vt = np.linalg.svd(rows)
    X = vt[..., -1, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        return X[..., :3] / X[..., 3:4]


def _project(P: Float[np.ndarray, "V 3 4"], X: Float[np.ndarray, "*B 3"]) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (*B, V, 2) and depths (*B, V) of points X in every view."""
    h = np.einsum("vij,...j->...vi", P[..., :3], X) + P[:, :, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        return h[..., :2] / h[..., 2:3], h[..., 2]


def _errors(P: np.ndarray, uv: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Reprojection errors (*B, V) in pixels; infinite where X is not in front of the camera."""
    proj, depth = _project(P, X)
    err = np.linalg.norm(proj - uv, axis=-1)
    return np.where((depth > 0) & np.isfinite(err), err, np.inf)


def _refine(P: np.ndarray, uv: np.ndarray, w: np.ndarray, X: np.ndarray, steps: int) -> np.ndarray:
    """Gauss-Newton on sum_i w_i |proj_i(X) - uv_i|^2, with step halving; keeps X if nothing improves."""

    def cost(Y):
        e = _errors(P, uv, Y)
        return float(np.sum(w * e ** 2)) if np.isfinite(e[w > 0]).all() else np.inf

    best = cost(X)
    for _ in range(steps):
        proj, depth = _project(P, X)
        r = (proj - uv) * np.sqrt(w)[:, None]  # (V, 2)
        Jac = (P[:, :2, :3] - proj[:, :, None] * P[:, None, 2, :3]) / depth[:, None, None]
        Jac = Jac * np.sqrt(w)[:, None, None]  # (V, 2, 3)
        A, b = Jac.reshape(-1, 3), r.reshape(-1)
        step = np.linalg.lstsq(A, -b, rcond=None)[0]
        for _ in range(8):
            c = cost(X + step)
            if c < best:
                break
            step = step / 2
        else:
            return X
        converged = best - c <= 1e-12 * max(best, 1e-30)
        X, best = X + step, c
        if converged:
            break
    return X


def triangulate_points(cameras: Sequence[Camera], uv: Float[np.ndarray, "N 2"],
                       weights: Float[np.ndarray, "N"] | None = None, refine_steps: int = 5) -> Float[np.ndarray, "3"]:
    """Triangulate one point seen in N >= 2 views (pinhole model; ``D`` is ignored).

    Weighted linear DLT, then up to ``refine_steps`` Gauss-Newton steps on the
    weighted squared reprojection error.

    Args:
        cameras: N cameras.
        uv: (N, 2) undistorted pixel observations.
        weights: (N,) non-negative per-view weights (default 1); a weight scales a view's DLT rows
            and its squared reprojection error, 0 ignores the view. At least 2 must be positive.
        refine_steps: Gauss-Newton steps (0: plain DLT).
    Returns:
        (3,) world point, metres.
    """
    uv = np.asarray(uv, dtype=np.float64)
    if uv.ndim != 2 or uv.shape[1] != 2:
        raise ConfigError(f"uv must be (N, 2) pixels, got shape {uv.shape}")
    if len(cameras) != len(uv):
        raise ConfigError(f"{len(cameras)} cameras but {len(uv)} observations in uv")
    w = np.ones(len(uv)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (len(uv),) or not np.isfinite(w).all() or (w < 0).any():
        raise ConfigError(f"weights must be ({len(uv)},) finite and >= 0, got {w!r}")
    if (w > 0).sum() < 2:
        raise ConfigError(f"triangulation needs at least 2 views with positive weight, got {(w > 0).sum()}")
    if not np.isfinite(uv[w > 0]).all():
        raise ConfigError("uv contains NaN or Inf in a view with positive weight")
    if refine_steps < 0:
        raise ConfigError(f"refine_steps must be >= 0, got {refine_steps}")
    keep = w > 0
    P, uv, w = _projection_matrices(cameras)[keep], uv[keep], w[keep]
    X = _dlt(P, uv, w / w.max())
    if refine_steps and np.isfinite(X).all():
        X = _refine(P, uv, w / w.max(), X, refine_steps)
    return X


def _robust_joint(P: np.ndarray, uv: np.ndarray, conf: np.ndarray, tol: np.ndarray, refine_steps: int,
                  camera: np.ndarray) -> np.ndarray:
    """Robust 3D point (NaN if no 2 cameras agree) of one joint from the V >= 2 observations where it is present;
    ``camera`` (V,) names the camera each was seen from: a hypothesis comes from two different cameras and stands
    only on inliers from at least two (two networks' keypoints of one view have no baseline between them)."""
    pairs = np.array([p for p in itertools.combinations(range(len(uv)), 2) if camera[p[0]] != camera[p[1]]])
    if len(pairs) == 0:
        return np.full(3, np.nan)
    Xs = _dlt(P[pairs], uv[pairs], np.ones(pairs.shape))  # (M, 3)
    err = _errors(P, uv, Xs)  # (M, V)
    inl = err < tol
    count = inl.sum(axis=1)
    truncated = np.minimum(err, tol).sum(axis=1)
    best = np.lexsort((truncated, -count))[0]
    inliers = inl[best]

    def two_cameras(mask: np.ndarray) -> bool:
        return len(np.unique(camera[mask])) >= 2

    if not two_cameras(inliers):
        return np.full(3, np.nan)
    X = np.full(3, np.nan)
    for _ in range(3):  # re-triangulate on the inliers until they settle
        X = _dlt(P[inliers], uv[inliers], conf[inliers] / conf[inliers].max())
        if refine_steps and np.isfinite(X).all():
            X = _refine(P[inliers], uv[inliers], conf[inliers] / conf[inliers].max(), X, refine_steps)
        new = _errors(P, uv, X) < tol
        if not two_cameras(new) or np.array_equal(new, inliers):
            break
        inliers = new
    return X


def _view_tolerances(kp: np.ndarray, present: np.ndarray, rel_threshold: float, min_threshold_px: float,
                     threshold_px: float | None) -> np.ndarray:
    if threshold_px is not None:
        return np.full(len(kp), float(threshold_px))
    tol = np.full(len(kp), float(min_threshold_px))
    for c in range(len(kp)):
        if present[c].sum() >= 2:
            xy = kp[c, present[c], :2]
            tol[c] = max(min_threshold_px, rel_threshold * float(np.linalg.norm(xy.max(0) - xy.min(0))))
    return tol


def consistency_report(cameras: Sequence[Camera], keypoints: Float[np.ndarray, "C 25 3"],
                       rel_threshold: float = REL_THRESHOLD, min_threshold_px: float = 2.0,
                       threshold_px: float | None = None, flag_share: float = 0.3, swap_gain: float = 0.5,
                       refine_steps: int = 5, view_cameras: Sequence[int] | None = None) -> ConsistencyReport:
    """Triangulate every joint robustly and measure each view's disagreement with the others.

    Args:
        cameras: C pinhole cameras of the undistorted images.
        keypoints: (C, 25, 3) BODY_25 x, y, confidence per view; confidence <= 0 (or NaN) or a
            non-finite x/y marks the joint missing in that view.
        rel_threshold: a view's outlier tolerance as a share of the diagonal of the box around its
            present keypoints.
        min_threshold_px: lower bound of the relative tolerance, pixels.
        threshold_px: absolute tolerance for every view, pixels; overrides the two above.
        flag_share: a view is flagged when at least this share of its triangulated joints are outliers.
        swap_gain: a view is a swap suspect when exchanging its L/R joints brings their median error
            to at most this share of the current one (and the current one exceeds the tolerance).
        refine_steps: Gauss-Newton steps after each DLT on the inliers (0: plain DLT).
        view_cameras: (C,) the camera each row of ``keypoints`` was seen from, when several rows are one camera's
            (several pose networks' keypoints of the same view, ``cameras`` repeated): hypotheses and their inliers
            then span at least two different cameras. Default: every row its own camera.
    Returns:
        The :class:`ConsistencyReport`; its per-view fields have one row per row of ``keypoints``.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim != 3 or kp.shape[1:] != (NUM_JOINTS, 3):
        raise ConfigError(f"keypoints must be (C, {NUM_JOINTS}, 3) x, y, confidence per view, got {kp.shape}")
    if len(cameras) != len(kp):
        raise ConfigError(f"{len(cameras)} cameras but keypoints for {len(kp)} views")
    if len(kp) == 0:
        raise ConfigError("consistency_report needs at least one view, got 0 cameras")
    if not rel_threshold >= 0 or not min_threshold_px > 0:
        raise ConfigError(f"rel_threshold must be >= 0 and min_threshold_px > 0, got {rel_threshold}, "
                          f"{min_threshold_px}")
    if threshold_px is not None and not threshold_px > 0:
        raise ConfigError(f"threshold_px must be > 0 pixels, got {threshold_px}")
    if not 0 < flag_share <= 1:
        raise ConfigError(f"flag_share must be in (0, 1], got {flag_share}")
    if not 0 < swap_gain < 1:
        raise ConfigError(f"swap_gain must be in (0, 1), got {swap_gain}")
    if refine_steps < 0:
        raise ConfigError(f"refine_steps must be >= 0, got {refine_steps}")

    C = len(kp)
    camera = np.arange(C) if view_cameras is None else np.asarray(view_cameras)
    if camera.shape != (C,):
        raise ConfigError(f"view_cameras must name the camera of each of the {C} views, got shape {camera.shape}")
    P = _projection_matrices(cameras)
    present = np.isfinite(kp[..., :2]).all(-1) & (kp[..., 2] > 0)
    tol = _view_tolerances(kp, present, rel_threshold, min_threshold_px, threshold_px)

    joints3d = np.full((NUM_JOINTS, 3), np.nan)
    err = np.full((C, NUM_JOINTS), np.nan)
    for j in range(NUM_JOINTS):
        views = np.flatnonzero(present[:, j])
        if len(np.unique(camera[views])) < 2:
            continue
        X = _robust_joint(P[views], kp[views, j, :2], kp[views, j, 2], tol[views], refine_steps, camera[views])
        if np.isfinite(X).all():
            joints3d[j] = X
            err[views, j] = _errors(P[views], kp[views, j, :2], X)
    measured = np.isfinite(err)
    outlier = measured & (err >= tol[:, None])
    n_measured = measured.sum(axis=1)
    flagged = np.flatnonzero((n_measured > 0) & (outlier.sum(axis=1) >= flag_share * n_measured))

    swaps = np.zeros(C, bool)
    r_idx = np.array([r for r, _ in BODY25_LR_PAIRS])
    l_idx = np.array([l for _, l in BODY25_LR_PAIRS])
    for c in range(C):
        both = measured[c, r_idx] & measured[c, l_idx]  # both joints of the pair present and triangulated
        if 2 * both.sum() < _MIN_SWAP_JOINTS:
            continue
        r, l = r_idx[both], l_idx[both]
        now = np.median(err[c, np.concatenate([r, l])])
        swapped = _errors(P[c:c + 1], kp[c, np.concatenate([l, r]), None, :2], joints3d[np.concatenate([r, l])])
        swaps[c] = now > tol[c] and np.median(swapped) <= swap_gain * now

    med = np.full(NUM_JOINTS, np.nan)
    for j in np.flatnonzero(measured.any(axis=0)):
        med[j] = np.median(err[measured[:, j], j])
    return ConsistencyReport(joints3d=joints3d, reprojection_error=err, outlier=outlier,
                             per_joint_median_error=med, flagged_views=flagged, swap_suspects=swaps,
                             threshold_px=tol)
