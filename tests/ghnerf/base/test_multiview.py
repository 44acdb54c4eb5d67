"""Multi-view consistency on a synthetic 8-camera ring with exactly known 3D joints."""

import numpy as np
import pytest

from ghnerf.base.body25 import BODY25_LR_PAIRS as LR_PAIRS
from ghnerf.base.body25 import BODY25_NAMES, NUM_JOINTS
from ghnerf.base.cameras import Camera, look_at
from ghnerf.base.errors import ConfigError
from ghnerf.base.multiview import consistency_report, triangulate_points

K = np.array([[200.0, 0.0, 128.0], [0.0, 200.0, 128.0], [0.0, 0.0, 1.0]])


def ring(n: int = 8, radius: float = 3.0, height: float = 0.5) -> list[Camera]:
    cams = []
    for i in range(n):
        a = 2 * np.pi * i / n
        R, T = look_at(np.array([radius * np.cos(a), radius * np.sin(a), height]), np.zeros(3))
        # distortion is set on purpose: keypoints are undistorted pixels, so it must be ignored
        cams.append(Camera(K.copy(), R, T, D=np.array([0.1, -0.05, 0.0, 0.0, 0.0]), height=256, width=256))
    return cams


def joints(seed: int = 0) -> np.ndarray:
    """25 random joints in a 0.5 x 0.5 x 1.7 m box around the origin."""
    rng = np.random.default_rng(seed)
    return rng.uniform([-0.25, -0.25, -0.85], [0.25, 0.25, 0.85], size=(NUM_JOINTS, 3))


def keypoints(cams: list[Camera], X: np.ndarray, noise_px: float = 0.0, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    kp = np.ones((len(cams), NUM_JOINTS, 3))
    for c, cam in enumerate(cams):
        kp[c, :, :2] = cam.project(X, distort=False) + rng.normal(0.0, noise_px, (NUM_JOINTS, 2))
    return kp


def test_exact_projections_are_recovered():
    cams, X = ring(), joints()
    rep = consistency_report(cams, keypoints(cams, X))
    np.testing.assert_allclose(rep.joints3d, X, atol=1e-6)
    assert np.nanmax(rep.reprojection_error) < 1e-6
    assert not rep.outlier.any() and rep.flagged_views.size == 0 and not rep.swap_suspects.any()
    # tolerance is 5 % of the person's box diagonal in each view, so a few pixels here
    assert np.all((rep.threshold_px > 3.0) & (rep.threshold_px < 10.0))


def test_triangulate_points_exact_weighted_and_refined():
    cams, X = ring(), joints()[0]
    uv = np.stack([c.project(X[None], distort=False)[0] for c in cams])
    np.testing.assert_allclose(triangulate_points(cams[:2], uv[:2]), X, atol=1e-9)
    bad = uv.copy()
    bad[3] += 30.0
    # a zero weight removes the corrupted view entirely
    w = np.ones(len(cams))
    w[3] = 0.0
    np.testing.assert_allclose(triangulate_points(cams, bad, w), X, atol=1e-9)
    assert np.linalg.norm(triangulate_points(cams, bad) - X) > 1e-3
    # a tiny positive weight almost removes it, in the DLT alone and after refinement
    w[3] = 1e-4
    for steps in (0, 5):
        assert np.linalg.norm(triangulate_points(cams, bad, w, refine_steps=steps) - X) < 1e-4

    # Gauss-Newton lowers the reprojection error of the algebraic (DLT) solution
    noisy = uv + np.random.default_rng(2).normal(0.0, 3.0, uv.shape)

    def sse(P, w):
        return sum(wi * np.sum((c.project(P[None], distort=False)[0] - o) ** 2) for c, o, wi in zip(cams, noisy, w))

    for w in (np.ones(len(cams)), np.random.default_rng(4).uniform(0.1, 1.0, len(cams))):
        dlt, refined = triangulate_points(cams, noisy, w, refine_steps=0), triangulate_points(cams, noisy, w)
        assert sse(refined, w) < sse(dlt, w)
        # the refined point is a stationary point of the weighted reprojection error
        eps = 1e-6
        grad = [(sse(refined + eps * e, w) - sse(refined - eps * e, w)) / (2 * eps) for e in np.eye(3)]
        assert np.max(np.abs(grad)) < 1e-2


def test_small_noise_gives_small_errors_and_no_outliers():
    cams, X = ring(), joints()
    rep = consistency_report(cams, keypoints(cams, X, noise_px=0.5))
    assert np.nanmax(rep.reprojection_error) < 2.0
    assert not rep.outlier.any() and rep.flagged_views.size == 0 and not rep.swap_suspects.any()
    assert np.max(np.linalg.norm(rep.joints3d - X, axis=1)) < 0.01
    assert np.all(rep.per_joint_median_error < 1.0)


@pytest.mark.parametrize("cam, bad_joints, flagged", [(3, [0, 4, 8, 13, 20], False),  # 5/25 = 20 % < 30 %
                                                      (0, [1, 2, 3, 6, 9, 11, 14, 17, 21, 24], True)])  # 40 %
def test_corrupted_keypoints_are_outliers_and_the_view_is_flagged(cam, bad_joints, flagged):
    cams, X = ring(), joints()
    kp = keypoints(cams, X, noise_px=0.5)
    rng = np.random.default_rng(3)
    angle = rng.uniform(0, 2 * np.pi, len(bad_joints))
    kp[cam, bad_joints, :2] += 40.0 * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    rep = consistency_report(cams, kp)
    expected = np.zeros((len(cams), NUM_JOINTS), bool)
    expected[cam, bad_joints] = True
    np.testing.assert_array_equal(rep.outlier, expected)
    assert np.max(np.linalg.norm(rep.joints3d - X, axis=1)) < 0.01
    np.testing.assert_allclose(rep.reprojection_error[cam, bad_joints], 40.0, atol=3.0)
    assert rep.flagged_views.tolist() == ([cam] if flagged else [])
    assert not rep.swap_suspects.any()


def test_left_right_swap_is_detected_in_that_view_only():
    cams, X = ring(), joints()
    kp = keypoints(cams, X, noise_px=0.5)
    for r, l in LR_PAIRS:
        kp[5, [r, l]] = kp[5, [l, r]]
    rep = consistency_report(cams, kp)
    assert np.flatnonzero(rep.swap_suspects).tolist() == [5]
    assert np.max(np.linalg.norm(rep.joints3d - X, axis=1)) < 0.01
    assert rep.flagged_views.tolist() == [5]
    # only the swapped view's L/R joints disagree
    paired = sorted(j for p in LR_PAIRS for j in p)
    assert not rep.outlier[np.arange(len(cams)) != 5].any()
    assert not rep.outlier[5, [j for j in range(NUM_JOINTS) if j not in paired]].any()


def test_a_view_that_is_off_everywhere_is_flagged_but_not_a_swap():
    cams, X = ring(), joints()
    kp = keypoints(cams, X, noise_px=0.5)
    kp[6, :, :2] += [40.0, -25.0]  # e.g. a wrong calibration or another person
    rep = consistency_report(cams, kp)
    assert rep.outlier[6].all() and rep.outlier.sum() == NUM_JOINTS
    assert rep.flagged_views.tolist() == [6] and not rep.swap_suspects.any()


def test_a_swap_within_tolerance_is_not_reported():
    cams, X = ring(), joints()
    for r, l in LR_PAIRS:  # left and right 1 cm apart: at most ~0.7 px in any view
        X[l] = X[r] + [0.0, 0.01, 0.0]
    kp = keypoints(cams, X)
    for r, l in LR_PAIRS:
        kp[5, [r, l]] = kp[5, [l, r]]
    rep = consistency_report(cams, kp)
    assert 0.1 < np.nanmedian(rep.reprojection_error[5]) < 1.0
    assert not rep.swap_suspects.any() and not rep.outlier.any()


def test_missing_joints_are_ignored_and_single_view_joints_are_nan():
    cams, X = ring(), joints()
    kp = keypoints(cams, X)
    kp[:4, 3, :2] = 1e4  # far-off garbage, but confidence 0: must be ignored
    kp[:4, 3, 2] = 0.0
    kp[2, 6, :2] = np.nan  # NaN position with positive confidence
    kp[:, 10, 2] = 0.0  # joint 10 seen by camera 1 only
    kp[1, 10, 2] = 0.9
    kp[:, 12, 2] = 0.0  # joint 12 seen by nobody
    rep = consistency_report(cams, kp)

    assert np.isnan(rep.reprojection_error[:4, 3]).all() and np.isnan(rep.reprojection_error[2, 6])
    assert np.all(np.isnan(rep.joints3d[[10, 12]]))
    assert np.isnan(rep.reprojection_error[:, [10, 12]]).all() and np.isnan(rep.per_joint_median_error[[10, 12]]).all()
    assert not rep.outlier.any() and rep.flagged_views.size == 0 and not rep.swap_suspects.any()
    ok = [j for j in range(NUM_JOINTS) if j not in (10, 12)]
    np.testing.assert_allclose(rep.joints3d[ok], X[ok], atol=1e-6)
    assert np.isfinite(rep.reprojection_error).sum() == len(cams) * 23 - 4 - 1


def test_rows_and_summary():
    cams, X = ring(), joints()
    kp = keypoints(cams, X, noise_px=0.5)
    kp[3, :10, :2] += 40.0
    kp[0, 7, 2] = 0.0
    rep = consistency_report(cams, kp)
    rows = rep.to_rows()
    assert len(rows) == len(cams) * NUM_JOINTS - 1
    assert {"camera", "joint", "error_px", "outlier"} == set(rows[0])
    assert not any(r["camera"] == 0 and r["joint"] == BODY25_NAMES[7] for r in rows)
    assert sum(r["outlier"] for r in rows) == 10
    assert all(r["outlier"] == (r["camera"] == 3 and BODY25_NAMES.index(r["joint"]) < 10) for r in rows)
    s = rep.summary()
    assert s["flagged_views"] == [3] and s["swap_suspects"] == []
    assert s["outlier_rate"] == pytest.approx(10 / (len(cams) * NUM_JOINTS - 1))
    assert s["median_error_px"] < 1.0 < s["mean_error_px"]


def test_absolute_threshold_overrides_relative_one():
    cams, X = ring(), joints()
    kp = keypoints(cams, X)
    kp[2, 0, :2] += 4.0  # ~5.7 px: below the relative tolerance, above a 3 px absolute one
    assert not consistency_report(cams, kp).outlier.any()
    rep = consistency_report(cams, kp, threshold_px=3.0)
    assert np.flatnonzero(rep.outlier).tolist() == [2 * NUM_JOINTS + 0]
    np.testing.assert_allclose(rep.threshold_px, 3.0)


def test_bad_input_raises_config_error():
    cams, X = ring(), joints()
    kp = keypoints(cams, X)
    with pytest.raises(ConfigError, match="8 cameras but keypoints for 7 views"):
        consistency_report(cams, kp[:7])
    with pytest.raises(ConfigError, match=r"\(C, 25, 3\)"):
        consistency_report(cams, kp[:, :24])
    with pytest.raises(ConfigError, match=r"\(C, 25, 3\)"):
        consistency_report(cams, kp[..., :2])
    with pytest.raises(ConfigError, match=r"\(C, 25, 3\)"):
        consistency_report(cams[:1], kp[0])
    with pytest.raises(ConfigError, match="flag_share"):
        consistency_report(cams, kp, flag_share=0.0)
    with pytest.raises(ConfigError, match="at least 2 views"):
        triangulate_points(cams[:1], kp[:1, 0, :2])
    with pytest.raises(ConfigError, match="uv must be"):
        triangulate_points(cams[:2], kp[:2, 0])
    with pytest.raises(ConfigError, match="3 cameras but 2"):
        triangulate_points(cams[:3], kp[:2, 0, :2])
    with pytest.raises(ConfigError, match="weights"):
        triangulate_points(cams[:2], kp[:2, 0, :2], weights=np.array([1.0, -1.0]))


def test_two_networks_keypoints_of_one_camera_never_triangulate_alone():
    """With ``view_cameras``, rows of the same camera (two pose networks' keypoints of one view) give no hypothesis
    between them: a joint only one camera reports stays missing however many rows report it (as rows of their own
    cameras, the same rows triangulate it, from one camera centre)."""
    cams, X = ring(3), joints(4)
    exact = keypoints(cams, X)
    teacher = exact.copy()
    teacher[:, :, :2] += 0.5  # the second network: half a pixel off everywhere, within the tolerance
    rows = np.concatenate([exact, teacher])
    ids = [0, 1, 2, 0, 1, 2]
    report = consistency_report(cams * 2, rows, view_cameras=ids)
    assert np.nanmax(np.linalg.norm(report.joints3d - X, axis=1)) < 0.01
    assert report.reprojection_error.shape == (6, NUM_JOINTS)
    np.testing.assert_array_equal(report.joints3d, consistency_report(cams * 2, rows, view_cameras=np.array(ids))
                                  .joints3d)
    only_cam0 = rows.copy()
    only_cam0[[1, 2, 4, 5], 7, 2] = 0  # joint 7: camera 0 alone, by both networks
    assert np.isnan(consistency_report(cams * 2, only_cam0, view_cameras=ids).joints3d[7]).all()
    # without view_cameras the six rows are six cameras: the same rows do triangulate joint 7 (from one camera)
    assert np.isfinite(consistency_report(cams * 2, only_cam0).joints3d[7]).all()
    # default: every row its own camera, exactly as before the option existed
    np.testing.assert_array_equal(consistency_report(cams, exact).joints3d,
                                  consistency_report(cams, exact, view_cameras=[0, 1, 2]).joints3d)
    with pytest.raises(ConfigError, match="view_cameras"):
        consistency_report(cams * 2, rows, view_cameras=[0, 1, 2])
