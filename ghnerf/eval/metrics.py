"""Evaluation metrics as pure functions (inputs are never modified; missing values are NaN; masks are bool).

Definitions (also printed in every evaluation report):

* **Masked PSNR** (ENeRF): over the pixels inside the evaluation mask (the projected
  body box or the foreground), images in [0, 1].
* **Masked SSIM** (ENeRF): scikit-image SSIM on the bounding rectangle of the mask.
* **Keypoints from heatmaps, the OpenPose way**: Gaussian filter (sigma 3 px), threshold,
  connected regions, the peak of each region; a joint's keypoint is its highest peak, refined
  to sub-pixel precision (DARK); a peak on the map's border or below the threshold is absent.
* **PCK@0.2**: a joint is correct if its error is below 0.2 x torso diameter, the
  LShoulder-RHip diagonal of the ground truth (mmpose ``JhmdbPCKAccuracy``, torso norm);
  joints missing in the ground truth are excluded; a view whose torso joints are
  missing is skipped.
* **COCO keypoint AP**: pycocotools' ``COCOeval`` (keypoints, OKS 0.50:0.95) for one person per
  image, COCO-17 joints of BODY_25, person area from the foreground mask.
* **3D keypoints**: per joint, the peak of a volumetric heatmap sampled on a grid,
  refined to sub-voxel precision by a parabola through the log-values along each axis; a peak
  on the grid's border is absent (the joint may lie outside the searched volume).
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from jaxtyping import Bool, Float
from scipy import ndimage

from ghnerf.base.body25 import COCO17_IN_BODY25
from ghnerf.base.body25 import JOINT_INDEX as J
from ghnerf.base.errors import ConfigError
from ghnerf.base.keypoint_codec import parabola_offset, refine_peak
from ghnerf.eval.metric_names import PCK_ALPHA

OPENPOSE_SMOOTH_SIGMA = 3.0
OPENPOSE_THRESHOLD = 0.1


def _crop(mask: np.ndarray) -> tuple[slice, slice]:
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        raise ConfigError("the evaluation mask is empty")
    return slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1)


def masked_psnr(pred: Float[np.ndarray, "H W 3"], gt: Float[np.ndarray, "H W 3"], mask: Bool[np.ndarray, "H W"]) -> float:
    """PSNR over the pixels inside ``mask`` (data range 1)."""
    mse = float(np.mean((pred[mask].astype(np.float64) - gt[mask].astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def masked_ssim(pred: Float[np.ndarray, "H W 3"], gt: Float[np.ndarray, "H W 3"], mask: Bool[np.ndarray, "H W"]) -> float:
    """scikit-image SSIM on the bounding rectangle of ``mask``."""
    from skimage.metrics import structural_similarity

    ys, xs = _crop(mask)
    a, b = pred[ys, xs].astype(np.float64), gt[ys, xs].astype(np.float64)
    win = min(7, *(s - (1 - s % 2) for s in a.shape[:2]))
    return float(structural_similarity(a, b, channel_axis=-1, data_range=1.0, win_size=max(win, 3)))


def heatmap_mse(pred: Float[np.ndarray, "K H W"], gt: Float[np.ndarray, "K H W"],
                valid: Bool[np.ndarray, "K"] | None = None, mask: Bool[np.ndarray, "H W"] | None = None) -> float:
    """Mean squared error over valid joints (and pixels inside ``mask``)."""
    sel_j = np.ones(len(gt), bool) if valid is None else np.asarray(valid, bool)
    d = (pred[sel_j].astype(np.float64) - gt[sel_j].astype(np.float64)) ** 2
    if mask is not None:
        d = d[:, mask]
    return float(d.mean()) if d.size else float("nan")


def openpose_keypoints(heatmaps: Float[np.ndarray, "K H W"], threshold: float = OPENPOSE_THRESHOLD,
                       smooth_sigma: float = OPENPOSE_SMOOTH_SIGMA) -> Float[np.ndarray, "K 3"]:
    """Per joint (x, y, score) of the highest peak among the connected regions above ``threshold``, refined to
    sub-pixel precision on the smoothed map (:func:`ghnerf.base.keypoint_codec.refine_peak`).

    ``score`` is the heatmap's value at the peak. A joint is absent (NaN xy, score exactly 0) when no region
    rises above ``threshold``, when the heatmap itself is below it at the peak, or when the peak lies on the
    map's border (it may be outside the image). Coordinates are the heatmap's pixels (pixel centres at integers).
    """
    out = np.full((len(heatmaps), 3), np.nan)
    out[:, 2] = 0.0
    for k, hm in enumerate(np.asarray(heatmaps, np.float64)):
        smooth = ndimage.gaussian_filter(hm, smooth_sigma) if smooth_sigma > 0 else hm
        labels, n = ndimage.label(smooth > threshold)
        if n == 0:
            continue
        peaks = ndimage.maximum_position(smooth, labels, index=np.arange(1, n + 1))
        values = ndimage.maximum(smooth, labels, index=np.arange(1, n + 1))
        y, x = peaks[int(np.argmax(values))]
        offset = refine_peak(smooth, y, x)
        if offset is not None and hm[y, x] >= threshold:
            out[k] = (x + offset[0], y + offset[1], float(hm[y, x]))
    return out


@dataclass(frozen=True)
class PCKResult:
    """PCK of a set of views: ``correct`` / ``evaluated`` joints; ``per_joint`` (K,) NaN where never evaluated."""

    correct: int
    evaluated: int
    per_joint: np.ndarray
    skipped_views: int

    @property
    def value(self) -> float:
        return self.correct / self.evaluated if self.evaluated else float("nan")


def torso_diameter(gt: Float[np.ndarray, "K 3"]) -> float:
    """‖LShoulder − RHip‖ of the ground truth, NaN when either is missing."""
    a, b = gt[J["LShoulder"]], gt[J["RHip"]]
    if a[2] <= 0 or b[2] <= 0 or not (np.isfinite(a[:2]).all() and np.isfinite(b[:2]).all()):
        return float("nan")
    return float(np.linalg.norm(a[:2] - b[:2]))


def pck(preds: Float[np.ndarray, "N K 3"], gts: Float[np.ndarray, "N K 3"], alpha: float = PCK_ALPHA,
        joints: Sequence[int] | None = None) -> PCKResult:
    """PCK@alpha over N views. Ground-truth joints with confidence <= 0 are excluded; a missing prediction
    (NaN xy) counts as wrong. ``joints``: indices of the joints scored (default all K), e.g. the joints a
    teacher defines; the others are excluded (``per_joint`` NaN), the torso still normalises."""
    preds, gts = np.asarray(preds, np.float64), np.asarray(gts, np.float64)
    if preds.shape != gts.shape or preds.ndim != 3:
        raise ConfigError(f"pck needs (N, K, 3) predictions and ground truth of the same shape, got "
                          f"{preds.shape} and {gts.shape}")
    K = gts.shape[1]
    scored = np.ones(K, bool)
    if joints is not None:
        idx = np.asarray(list(joints), dtype=int)
        if idx.size == 0 or idx.min() < 0 or idx.max() >= K:
            raise ConfigError(f"pck joints must be non-empty indices in [0, {K}), got {list(joints)}")
        scored = np.zeros(K, bool)
        scored[idx] = True
    correct, valid, view_ok = pck_hits(preds, gts, alpha)
    valid &= scored
    hit, seen = (correct & valid).sum(0).astype(float), valid.sum(0).astype(float)
    per_joint = np.where(seen > 0, hit / np.maximum(seen, 1), np.nan)
    return PCKResult(int(hit.sum()), int(seen.sum()), per_joint, int((~view_ok).sum()))


def pck_hits(preds: Float[np.ndarray, "N K 3"], gts: Float[np.ndarray, "N K 3"], alpha: float = PCK_ALPHA) -> tuple[
        Bool[np.ndarray, "N K"], Bool[np.ndarray, "N K"], Bool[np.ndarray, "N"]]:
    """Per joint: within ``alpha`` x torso of the ground truth (a missing prediction is not) and evaluated (the
    ground truth has the joint and the view its torso); per view: its torso is there (>= 1 px)."""
    preds, gts = np.asarray(preds, np.float64), np.asarray(gts, np.float64)
    torso = np.array([torso_diameter(g) for g in gts]).reshape(len(gts))
    view_ok = np.isfinite(torso) & (torso >= 1.0)
    valid = (gts[..., 2] > 0) & np.isfinite(gts[..., :2]).all(-1) & view_ok[:, None]
    err = np.linalg.norm(preds[..., :2] - gts[..., :2], axis=-1)
    with np.errstate(invalid="ignore"):
        correct = np.isfinite(err) & (err < alpha * np.where(view_ok, torso, 0.0)[:, None])
    return correct, valid, view_ok


CALIBRATION_BINS = 10


@dataclass(frozen=True)
class Calibration:
    """How often a predicted joint of confidence c is within the PCK radius, per confidence bin.

    Attributes:
        edges: (B + 1,) bin edges over [0, 1] (a confidence above 1 falls in the last bin).
        joints: (B,) predicted joints (confidence > 0) with an evaluated ground truth in each bin.
        within: (B,) how many of them are within the PCK radius.
    """

    edges: np.ndarray
    joints: np.ndarray
    within: np.ndarray

    def as_dict(self) -> dict:
        rate = np.where(self.joints > 0, self.within / np.maximum(self.joints, 1), np.nan)
        return {"bin_edges": self.edges.tolist(), "joints": self.joints.tolist(),
                "within_pck": [None if np.isnan(r) else float(r) for r in rate]}


def confidence_calibration(preds: Float[np.ndarray, "N K 3"], gts: Float[np.ndarray, "N K 3"],
                           alpha: float = PCK_ALPHA, bins: int = CALIBRATION_BINS) -> Calibration:
    """Reliability of the confidences: joints predicted present (confidence > 0, finite xy) where PCK evaluates
    the ground truth, binned by confidence, and how many of each bin are PCK-correct."""
    correct, valid, _ = pck_hits(preds, gts, alpha)
    conf = np.asarray(preds, np.float64)[..., 2]
    present = valid & (conf > 0) & np.isfinite(np.asarray(preds, np.float64)[..., :2]).all(-1)
    edges = np.linspace(0.0, 1.0, bins + 1)
    b = np.clip(np.searchsorted(edges, conf[present], side="right") - 1, 0, bins - 1)
    return Calibration(edges, np.bincount(b, minlength=bins), np.bincount(b, weights=correct[present],
                                                                         minlength=bins).astype(int))


def volume_peaks(volume: Float[np.ndarray, "K X Y Z"], origin: Float[np.ndarray, "3"], voxel: float,
                 threshold: float = 1e-3) -> Float[np.ndarray, "K 4"]:
    """Per joint (x, y, z, score) of the volume's maximum with sub-voxel refinement, in world units.

    Args:
        volume: heatmap values on a regular grid; voxel (i, j, k) is at origin + voxel * (i, j, k).
        origin: world position of voxel (0, 0, 0).
        voxel: grid spacing.
        threshold: peaks below it give NaN and score 0.
    Returns:
        (K, 4); a joint whose peak is on the grid's border is absent (NaN, score 0): the volume may have cut it off.
    """
    out = np.full((len(volume), 4), np.nan)
    out[:, 3] = 0.0
    eps = 1e-12
    for k, v in enumerate(np.asarray(volume, np.float64)):
        idx = np.array(np.unravel_index(int(np.argmax(v)), v.shape))
        peak = v[tuple(idx)]
        if not peak > threshold or any(i in (0, n - 1) for i, n in zip(idx, v.shape)):
            continue
        offset = np.zeros(3)
        for axis, step in enumerate(np.eye(3, dtype=int)):
            vals = np.array([v[tuple(idx - step)], peak, v[tuple(idx + step)]])
            if vals.min() > eps:
                offset[axis] = parabola_offset(*np.log(vals))
        out[k, :3] = origin + voxel * (np.array(idx) + offset)
        out[k, 3] = peak
    return out


# Per-keypoint OKS constants of COCO-17 (cocodataset/cocoapi PythonAPI/pycocotools/cocoeval.py, Params.kpt_oks_sigmas).
COCO_OKS_SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89]) / 10
COCO_OKS_THRESHOLDS = np.linspace(0.5, 0.95, 10)
COCO_RECALL_POINTS = np.linspace(0.0, 1.0, 101)


def coco17(keypoints: Float[np.ndarray, "N 25 3"]) -> Float[np.ndarray, "N 17 3"]:
    """COCO-17 joints of BODY_25 ones (EasyMocap's ``COCO17_IN_BODY25``)."""
    return np.asarray(keypoints, np.float64)[:, list(COCO17_IN_BODY25)]


def keypoint_oks(pred: Float[np.ndarray, "17 3"], gt: Float[np.ndarray, "17 3"], area: float) -> float:
    """COCO object keypoint similarity over the ground truth's labelled joints (confidence > 0); a prediction's
    own confidence is not used and a missing predicted joint sits at (0, 0), as in a COCO results file. NaN when
    the ground truth has no labelled joint."""
    labelled = (gt[:, 2] > 0) & np.isfinite(gt[:, :2]).all(1)
    if not labelled.any():
        return float("nan")
    xy = np.where(np.isfinite(pred[:, :2]) & (pred[:, 2:] > 0), pred[:, :2], 0.0)
    d2 = ((xy - gt[:, :2]) ** 2).sum(1)
    e = d2 / (2 * COCO_OKS_SIGMAS) ** 2 / (area + np.spacing(1)) / 2
    return float(np.exp(-e[labelled]).mean())


def coco_keypoint_ap(preds: Float[np.ndarray, "N 17 3"], gts: Float[np.ndarray, "N 17 3"],
                     areas: Float[np.ndarray, "N"]) -> float:
    """COCO keypoint AP (OKS 0.50:0.95, 101 recall points) of one person per image, as pycocotools' ``COCOeval``
    (iouType ``keypoints``, area range all) computes it.

    Args:
        preds: predicted joints (x, y, confidence); an image whose prediction has no joint with confidence > 0
            has no detection. A detection's score is the mean confidence of its joints present.
        gts: ground-truth joints, confidence > 0 = labelled; an image without a labelled joint is left out
            with its detection (COCOeval would match that detection to the person's box instead).
        areas: the ground-truth person's area (pixels^2, e.g. its mask's pixel count).
    Returns:
        AP, NaN when no image has a labelled joint.
    """
    preds, gts = np.asarray(preds, np.float64), np.asarray(gts, np.float64)
    if preds.shape != gts.shape or preds.shape[1:] != (17, 3) or len(areas) != len(preds):
        raise ConfigError(f"COCO AP needs (N, 17, 3) predictions and ground truth and N areas, got {preds.shape}, "
                          f"{gts.shape}, {len(areas)}")
    labelled = ((gts[..., 2] > 0) & np.isfinite(gts[..., :2]).all(-1)).any(1)
    if not labelled.any():
        return float("nan")
    present = (preds[..., 2] > 0) & np.isfinite(preds[..., :2]).all(-1)
    det = np.flatnonzero(present.any(1) & labelled)
    scores = np.array([preds[i, present[i], 2].mean() for i in det])
    det = det[np.argsort(-scores, kind="mergesort")]
    oks = np.array([keypoint_oks(preds[i], gts[i], areas[i]) for i in det])
    aps = []
    for t in COCO_OKS_THRESHOLDS:
        tp, fp = np.cumsum(oks >= t), np.cumsum(oks < t)
        recall = tp / labelled.sum()
        precision = np.maximum.accumulate((tp / (tp + fp + np.spacing(1)))[::-1])[::-1]
        idx = np.searchsorted(recall, COCO_RECALL_POINTS, side="left")
        aps.append(np.where(idx < len(precision), precision[np.minimum(idx, len(precision) - 1)], 0.0).mean()
                   if len(precision) else 0.0)
    return float(np.mean(aps))


def mpjpe(pred: Float[np.ndarray, "K 3"], gt: Float[np.ndarray, "K 3"]) -> float:
    """Mean per-joint position error over joints present in both (same unit as the inputs)."""
    ok = np.isfinite(pred).all(1) & np.isfinite(gt).all(1)
    return float(np.linalg.norm(pred[ok] - gt[ok], axis=1).mean()) if ok.any() else float("nan")


@dataclass(frozen=True)
class PairedDifference:
    """``a - b`` of a pooled ratio over the same views, with a bootstrap confidence interval over views.

    Attributes:
        difference: the observed difference; low, high: the interval's ends; confidence: its level.
        views: views compared; a_better, b_better: views where each side is better (more correct joints; for
            MPJPE, a lower error).
    """

    difference: float
    low: float
    high: float
    confidence: float
    views: int
    a_better: int
    b_better: int


def paired_pck_difference(a_correct, b_correct, evaluated, confidence: float = 0.95, resamples: int = 4000,
                          seed: int = 0) -> PairedDifference:
    """PCK of ``a`` minus PCK of ``b`` on the same views (pooled over joints, as :func:`pck`), with a percentile
    bootstrap interval that resamples whole views (``scipy.stats.bootstrap``, paired).

    Args:
        a_correct, b_correct: (N,) correct joints per view of the two models.
        evaluated: (N,) joints evaluated per view (the ground truth decides it, so both share it).
    Raises:
        ConfigError: arrays of different lengths, fewer than 2 views, or no evaluated joint.
    """
    a, b, n = (np.asarray(x, np.float64) for x in (a_correct, b_correct, evaluated))
    if not (a.shape == b.shape == n.shape) or a.ndim != 1 or len(a) < 2 or n.sum() <= 0:
        raise ConfigError(f"paired PCK needs per-view counts of equal length >= 2 with evaluated joints, got "
                          f"{a.shape}, {b.shape}, {n.shape}")
    return _paired_pooled(a, b, n, confidence, resamples, seed, a_better=int((a > b).sum()),
                          b_better=int((b > a).sum()))


def paired_mpjpe_difference(a: Float[np.ndarray, "N K 3"], b: Float[np.ndarray, "N K 3"],
                            gt: Float[np.ndarray, "N K 3"], confidence: float = 0.95, resamples: int = 4000,
                            seed: int = 0) -> tuple[float, float, PairedDifference]:
    """MPJPE of ``a`` minus MPJPE of ``b`` over the joints both give and the ground truth has (pooled over those
    joints: a method that leaves its hard joints out is not rewarded for it), with a percentile bootstrap
    interval that resamples whole views, as :func:`paired_pck_difference`.

    Returns:
        (a's MPJPE, b's MPJPE, the difference; its a_better / b_better count views where each side's error on the
        shared joints is lower).
    Raises:
        ConfigError: arrays of different shapes, fewer than 2 views, or no joint all three give.
    """
    a, b, gt = (np.asarray(x, np.float64) for x in (a, b, gt))
    if not (a.shape == b.shape == gt.shape) or a.ndim != 3 or len(a) < 2:
        raise ConfigError(f"paired MPJPE needs (N, K, 3) joints of equal shape with N >= 2, got {a.shape}, "
                          f"{b.shape}, {gt.shape}")
    shared = shared_joints(a, b, gt)
    if not shared.any():
        raise ConfigError("paired MPJPE: no joint that both sides and the ground truth give")
    ea, eb = (np.where(shared, np.linalg.norm(np.nan_to_num(x - gt), axis=2), 0.0).sum(1) for x in (a, b))
    n = shared.sum(1).astype(np.float64)
    diff = _paired_pooled(ea, eb, n, confidence, resamples, seed, a_better=int((ea < eb).sum()),
                          b_better=int((eb < ea).sum()))
    return float(ea.sum() / n.sum()), float(eb.sum() / n.sum()), diff


def shared_joints(*joints: Float[np.ndarray, "N K 3"]) -> Bool[np.ndarray, "N K"]:
    """(view, joint) that every one of the arrays gives (finite x, y, z)."""
    return np.logical_and.reduce([np.isfinite(np.asarray(j, np.float64)).all(-1) for j in joints])


def _paired_pooled(a, b, n, confidence: float, resamples: int, seed: int, a_better: int,
                   b_better: int) -> PairedDifference:
    """``(sum a - sum b) / sum n`` over (N,) per-view sums, with a paired percentile bootstrap over views."""
    from scipy.stats import bootstrap

    def stat(x, y, m, axis=-1):
        return (x.sum(axis) - y.sum(axis)) / np.maximum(m.sum(axis), 1)

    res = bootstrap((a, b, n), stat, paired=True, vectorized=True, confidence_level=confidence,
                    n_resamples=resamples, method="percentile", random_state=np.random.default_rng(seed))
    return PairedDifference(float(stat(a, b, n)), float(res.confidence_interval.low),
                            float(res.confidence_interval.high), confidence, len(a), a_better, b_better)
