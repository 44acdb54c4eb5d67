"""Metrics against hand-computed and independent values."""

import inspect

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from ghnerf.body25 import JOINT_INDEX as J
from ghnerf.codecs.keypoints import HeatmapCodec
from ghnerf.errors import ConfigError
from ghnerf.eval.metrics import (masked_psnr, masked_ssim, mpjpe, openpose_keypoints, paired_pck_difference, pck,
                                 volume_peaks)


def test_masked_psnr_and_ssim_equal_scikit_image_on_the_region():
    rng = np.random.default_rng(0)
    gt = rng.random((40, 50, 3))
    pred = np.clip(gt + rng.normal(0, 0.05, gt.shape), 0, 1)
    pred[:5] = 0  # errors outside the mask must not count
    mask = np.zeros((40, 50), bool)
    mask[10:30, 12:44] = True
    assert masked_psnr(pred, gt, mask) == pytest.approx(
        peak_signal_noise_ratio(gt[10:30, 12:44], pred[10:30, 12:44], data_range=1.0), rel=1e-9)
    assert masked_ssim(pred, gt, mask) == pytest.approx(
        structural_similarity(pred[10:30, 12:44], gt[10:30, 12:44], channel_axis=-1, data_range=1.0), rel=1e-9)
    with pytest.raises(ConfigError):
        masked_ssim(pred, gt, np.zeros_like(mask))


def test_openpose_keypoints_recover_planted_peaks_and_ignore_noise():
    codec = HeatmapCodec(stride=1, sigma=4.0)
    kp = np.zeros((25, 3))
    kp[:, 0] = np.linspace(10, 90, 25)
    kp[:, 1] = np.linspace(80, 15, 25)
    kp[:, 2] = 1
    kp[7, 2] = 0  # this joint is absent
    hm, _ = codec.encode(kp, 100, 100)
    rng = np.random.default_rng(1)
    hm = hm + rng.uniform(0, 0.05, hm.shape)  # sub-threshold noise everywhere
    hm[3, 50, 5] = 0.09  # a lone sub-threshold speck
    hm[4] += 0.6 * codec.encode(np.array([[30.0, 30.0, 1.0]]), 100, 100)[0][0]  # a weaker second person
    out = openpose_keypoints(hm)
    present = kp[:, 2] > 0
    err = np.linalg.norm(out[present, :2] - kp[present, :2], axis=1)
    assert err.max() <= 1.0
    assert np.isnan(out[7, 0]) and out[7, 2] == 0  # noise alone never makes a keypoint
    np.testing.assert_allclose(out[4, :2], kp[4, :2], atol=1.0)  # the stronger region wins


def test_pck_hand_computed():
    gt = np.zeros((2, 25, 3))
    gt[..., 2] = 1.0
    gt[:, J["LShoulder"], :2] = (0, 0)
    gt[:, J["RHip"], :2] = (30, 40)  # torso diameter 50 -> threshold 10 px
    pred = gt.copy()
    pred[0, 0, :2] += (6, 8)    # error 10: not < 10, wrong
    pred[0, 1, :2] += (3, 4)    # error 5: right
    pred[0, 2, :2] = np.nan     # missing prediction: wrong
    gt[0, 3, 2] = 0             # missing in the ground truth: excluded
    pred[1] += 100              # second view all wrong...
    gt[1, J["RHip"], 2] = 0     # ...but its torso is missing: view skipped
    res = pck(pred, gt)
    assert res.skipped_views == 1
    assert res.evaluated == 24  # 25 joints minus the excluded one
    assert res.correct == 24 - 2  # joints 0 and 2 wrong
    assert res.value == pytest.approx(22 / 24)
    assert np.isnan(res.per_joint[3]) and res.per_joint[0] == 0 and res.per_joint[1] == 1
    # Under the test-time shape checks (pyproject addopts) the annotation rejects this call first; unwrap
    # reaches pck's own check, which is what callers get in production.
    with pytest.raises(ConfigError):
        inspect.unwrap(pck)(pred[:, :10], gt)


def test_3d_peak_recovered_within_a_voxel():
    origin, voxel = np.array([-1.0, -1.0, 0.0]), 0.05
    xs = origin[0] + voxel * np.arange(41)
    ys = origin[1] + voxel * np.arange(41)
    zs = origin[2] + voxel * np.arange(41)
    X, Y, Z = np.meshgrid(xs, ys, zs, indexing="ij")
    true = np.array([[0.123, -0.207, 1.031], [-0.5, 0.4, 0.3]])
    vol = np.stack([np.exp(-((X - t[0]) ** 2 + (Y - t[1]) ** 2 + (Z - t[2]) ** 2) / (2 * 0.06**2)) for t in true])
    vol = np.concatenate([vol, np.zeros((1, *vol.shape[1:]))])  # an empty joint
    peaks = volume_peaks(vol, origin, voxel)
    np.testing.assert_allclose(peaks[:2, :3], true, atol=1e-6)  # exact for a Gaussian
    assert np.isnan(peaks[2, 0]) and peaks[2, 3] == 0
    assert mpjpe(peaks[:, :3], np.vstack([true, [0, 0, 0]])) == pytest.approx(0.0, abs=1e-6)


def test_mpjpe_hand_computed():
    gt = np.array([[0.0, 0, 0], [1, 1, 1], [2, 0, 0], [0, 5, 0], [7, 7, 7]])
    pred = gt + np.array([[3.0, 4, 0], [0, 0, 1], [0, 0, 0], [9, 9, 9], [0, 0, 0]])  # errors 5, 1, 0, -, -
    pred[3] = np.nan  # not predicted: excluded
    gt[4, 2] = np.nan  # not in the ground truth: excluded
    assert mpjpe(pred, gt) == pytest.approx((5 + 1 + 0) / 3)
    assert np.isnan(mpjpe(np.full((2, 3), np.nan), gt[:2]))  # nothing to compare


def test_paired_pck_difference_against_hand_counts():
    evaluated = np.array([20, 20, 25, 25])
    teacher = np.array([15, 16, 20, 19])
    student = teacher + np.array([2, 1, 2, 3])  # better on every view
    d = paired_pck_difference(student, teacher, evaluated)
    assert d.difference == pytest.approx((78 - 70) / 90)  # pooled over joints, as pck() pools
    assert (d.views, d.a_better, d.b_better) == (4, 4, 0)
    # resamples keep whole views: each is a weighted mean of the per-view gains 2/20, 1/20, 2/25, 3/25
    assert 1 / 20 - 1e-9 <= d.low <= d.difference <= d.high <= 3 / 25 + 1e-9
    same = paired_pck_difference(teacher, teacher, evaluated)
    assert (same.difference, same.low, same.high) == (0.0, 0.0, 0.0)
    mixed = paired_pck_difference(teacher + np.array([3, -3, 2, -2]), teacher, evaluated)
    assert mixed.low < 0 < mixed.high and (mixed.a_better, mixed.b_better) == (2, 2)
    with pytest.raises(ConfigError):
        paired_pck_difference(student, teacher[:3], evaluated)
