"""Fused teacher targets: wrong and missing per-view labels are replaced by the reprojection the views agree on."""

import numpy as np
import pytest

from ghnerf.base.body25 import BODY25_LR_PAIRS as LR_PAIRS
from ghnerf.base.errors import ConfigError
from ghnerf.target_fusion import FusionConfig, fuse_keypoints
from tests.ghnerf.base.test_multiview import joints, keypoints, ring


def test_corrupted_swapped_and_missing_labels_are_replaced_by_the_agreed_reprojection():
    cams, X = ring(), joints()
    exact = keypoints(cams, X)
    teacher = exact.copy()
    teacher[2, 4, :2] += 25.0  # a wrist 25 px off in one view
    for r, l in LR_PAIRS:  # a left/right swap in another view
        teacher[5, [r, l]] = teacher[5, [l, r]]
    teacher[6, 10] = (np.nan, np.nan, 0.0)  # a knee the teacher missed
    fused = fuse_keypoints(cams, teacher)
    np.testing.assert_allclose(fused.keypoints[..., :2], exact[..., :2], atol=1e-6)
    assert (fused.keypoints[..., 2] == 1.0).all()
    np.testing.assert_allclose(fused.joints3d, X, atol=1e-8)
    # RWrist: off in view 2, swapped in view 5; RKnee: missing in 6, swapped in 5; Nose has no pair
    assert fused.inliers[4] == 6 and fused.inliers[10] == 6 and fused.inliers[0] == 8


def test_a_joint_too_few_views_agree_on_is_dropped_in_every_view():
    cams, X = ring(), joints()
    teacher = keypoints(cams, X)
    teacher[2:, 7] = (np.nan, np.nan, 0.0)  # only views 0 and 1 see joint 7
    fused = fuse_keypoints(cams, teacher, FusionConfig(min_inliers=3))
    assert np.isnan(fused.keypoints[:, 7, :2]).all() and (fused.keypoints[:, 7, 2] == 0).all()
    assert np.isnan(fused.joints3d[7]).all()
    # with two agreeing views allowed, the joint is kept and reprojected into all eight
    kept = fuse_keypoints(cams, teacher, FusionConfig(min_inliers=2))
    np.testing.assert_allclose(kept.keypoints[:, 7, :2], keypoints(cams, X)[:, 7, :2], atol=1e-6)


def test_bad_settings_and_shapes_are_refused():
    with pytest.raises(ConfigError, match="min_inliers"):
        FusionConfig(min_inliers=1)
    cams, X = ring(), joints()
    with pytest.raises(ConfigError, match="cameras"):
        fuse_keypoints(cams[:3], keypoints(cams, X))


def test_example_set_trains_on_fused_teacher_keypoints(student_root, tmp_path):
    from ghnerf.app.distill import DistillConfig, distill
    from ghnerf.base.keypoint_codec import HeatmapCodec
    from ghnerf.student.data import ExampleSet
    from storage.targets import TargetStore

    distill(student_root, tmp_path / "t", DistillConfig(teacher="gt-joints"))
    store = TargetStore(tmp_path / "t", "gt-joints")
    fused = ExampleSet(student_root, "train", image_scale=0.5, heatmaps="store", heatmap_store=store,
                       fusion=FusionConfig())
    ex = fused.example(1)
    # the gt-joints teacher is exact, so the fused keypoints are the dataset's joints (scaled by 0.5)
    peaks = HeatmapCodec(stride=1, sigma=3.5).decode(ex.heatmaps.numpy())
    present = ex.joints2d[:, 2].numpy() > 0
    assert present.sum() >= 20 and ex.joint_valid.numpy()[present].all()
    np.testing.assert_allclose(peaks[present, :2], ex.joints2d.numpy()[present, :2], atol=0.3)
    # the peaks are exactly 1: Gaussians drawn at the fused points, not the teacher's own maps
    np.testing.assert_allclose(ex.heatmaps.numpy()[present].max(axis=(1, 2)), 1.0, atol=0.05)
    with pytest.raises(ConfigError, match="fused targets need teacher heatmaps"):
        ExampleSet(student_root, "train", heatmaps="dataset", fusion=FusionConfig())
