"""Triangulated joint hypotheses: analytic cameras and planted keypoints, and the student that starts from them."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from jaxtyping import TypeCheckError

from ghnerf.base.body25 import NUM_JOINTS
from ghnerf.base.cameras import Camera, look_at
from ghnerf.base.errors import ConfigError
from ghnerf.student.config import StudentConfig, preset
from ghnerf.student.joint_hypotheses import hypothesis_heatmaps, triangulate_source_keypoints
from ghnerf.student.model import EVIDENCE_BIAS, EVIDENCE_GAIN_WITH_HYPOTHESES, HYPOTHESIS_GAIN, GHNeRF
from ghnerf.student.ray_evidence import ray_joint_evidence
from ghnerf.student.weights import AutoWeights, random_init_note
from tests.ghnerf.student.test_ray_evidence import fine_rays_with_evidence

K_NP = np.array([[140.0, 0, 63.5], [0, 140.0, 63.5], [0, 0, 1]])
RNG = np.random.default_rng(3)
JOINTS = RNG.uniform([-0.3, -0.3, 0.2], [0.3, 0.3, 1.8], size=(NUM_JOINTS, 3))


def _camera(eye) -> Camera:
    R, T = look_at(np.asarray(eye, float), np.array([0.0, 0.0, 1.0]))
    return Camera(K_NP, R, T, height=128, width=128)


CAMERAS = [_camera(e) for e in ([3.0, 0.2, 1.3], [0.1, 3.1, 1.0], [-2.9, -0.5, 1.2], [0.4, -3.0, 1.4])]


def _tensors(cams):
    K = torch.tensor(np.stack([c.K for c in cams]), dtype=torch.float64)
    w2c = torch.tensor(np.stack([c.world_to_cam for c in cams]), dtype=torch.float64)
    return K, w2c


def _keypoints(cams, joints=JOINTS):
    return np.stack([np.concatenate([c.project(joints), np.ones((len(joints), 1))], axis=1) for c in cams])


def test_exact_keypoints_triangulate_to_the_planted_joints():
    K, w2c = _tensors(CAMERAS)
    X = triangulate_source_keypoints(_keypoints(CAMERAS), K, w2c)
    np.testing.assert_allclose(X.numpy(), JOINTS, atol=1e-6)


def test_an_outlier_view_is_rejected_and_a_joint_one_view_reports_is_missing():
    kp = _keypoints(CAMERAS)
    kp[2, :, :2] += RNG.uniform(25, 40, size=(NUM_JOINTS, 2))  # one view wrong everywhere, by 25-40 px
    kp[1:, 7, 2] = 0  # joint 7: only view 0 reports it
    K, w2c = _tensors(CAMERAS)
    X = triangulate_source_keypoints(kp, K, w2c).numpy()
    others = np.arange(NUM_JOINTS) != 7
    np.testing.assert_allclose(X[others], JOINTS[others], atol=1e-6)
    assert np.isnan(X[7]).all()


def test_hypothesis_heatmap_is_the_gaussian_of_the_pixel_distance():
    target = CAMERAS[0]
    K, w2c = _tensors([target])
    joints = torch.tensor(JOINTS[:3])
    joints[2] = float("nan")  # missing
    on = target.project(JOINTS[:1])[0]
    uv = torch.tensor(np.stack([on, on + [3.0, 4.0], on + [-20.0, 0.0]]))  # 0, 5 and 20 px from joint 0
    heat = hypothesis_heatmaps(uv, K[0], w2c[0], joints, sigma=5.0).numpy()
    np.testing.assert_allclose(heat[:, 0], np.exp(-np.array([0.0, 25.0, 400.0]) / 50.0), rtol=1e-9)
    d1 = np.linalg.norm(uv.numpy() - target.project(JOINTS[1:2])[0], axis=1)
    np.testing.assert_allclose(heat[:, 1], np.exp(-d1**2 / 50.0), rtol=1e-9)
    assert (heat[:, 2] == 0).all()
    behind = torch.tensor(2 * target.center - JOINTS[0])[None]  # mirrored through the camera centre
    assert float(hypothesis_heatmaps(uv, K[0], w2c[0], behind, sigma=5.0).abs().max()) == 0.0


def test_joint_hypotheses_need_a_pose_encoder():
    with pytest.raises(ConfigError, match="pose network"):
        preset("ghnerf-resnet18", joint_hypotheses=True)
    with pytest.raises(ConfigError, match="joint_hypothesis_sigma"):
        preset("ghnerf-mediapipe", joint_hypotheses=True, joint_hypothesis_sigma=0.0)
    old = preset("ghnerf-mediapipe").to_dict()
    del old["joint_hypotheses"], old["joint_hypothesis_sigma"]  # checkpoints written before the option existed
    assert StudentConfig.from_dict(old).joint_hypotheses is False


@pytest.fixture(scope="module")
def example(student_root):
    pytest.importorskip("mediapipe", reason="mediapipe==0.10.14 is a core dependency; `make install` installs it")
    from ghnerf.student.data import ExampleSet

    return ExampleSet(student_root, "test", image_scale=1.0).example(0)


def _triangulated_teacher_heatmap(model: GHNeRF, batch, uv: torch.Tensor
                                  ) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """The triangulated teacher's heatmap T (R, J) at pixels ``uv``, computed independently of the model (the robust
    triangulation of MediaPipe's source keypoints at the model's tolerance, with the missing joints lifted when the
    model's config lifts them, projected in numpy), the joints (J, 3) and their projections into the target (J, 2+)."""
    from ghnerf.base.joint_lifting import lift_missing_joints
    from ghnerf.base.multiview import consistency_report
    from ghnerf.eval.triangulated_teacher import project_joints

    _, keypoints = model.encoder.heatmaps_and_keypoints(batch.src_images_unmasked)
    cams = [Camera(K=k, R=m[:3, :3], T=m[:3, 3]) for k, m in zip(batch.src_K.double().numpy(),
                                                                 batch.src_w2c.double().numpy())]
    X = consistency_report(cams, keypoints, rel_threshold=model.cfg.hypothesis_rel_threshold).joints3d
    if model.cfg.lift_missing_joints:
        X = lift_missing_joints(cams, keypoints, X)
    tgt = Camera(K=batch.tgt_K.double().numpy(), R=batch.tgt_w2c.double().numpy()[:3, :3],
                 T=batch.tgt_w2c.double().numpy()[:3, 3])
    proj = project_joints(tgt, X)
    assert np.isfinite(proj[:, 0]).sum() >= 15
    d2 = ((uv.double().numpy()[:, None] - proj[None, :, :2]) ** 2).sum(-1)
    T = torch.tensor(np.where(np.isfinite(d2), np.exp(-np.nan_to_num(d2, nan=1e9) / (2 * 7.0**2)), 0.0),
                     dtype=torch.float32)
    return T, X, proj


def test_the_student_starts_as_the_calibrated_hypotheses_and_evidence(example):
    """With the MLP's last layer at zero, every sample's heatmap is sigmoid(8 T + 4 E - 4), T the Gaussian at the
    projection of MediaPipe's source keypoints triangulated, E the ray evidence; a ray shows acc times that,
    in the renderer and in the volumetric query."""
    model = GHNeRF(preset("ghnerf-mediapipe", joint_hypotheses=True)).eval()
    batch = example.batch
    H, W = batch.image_size
    uv, enc, out, evidence = fine_rays_with_evidence(model, batch, 29)
    T, X, proj = _triangulated_teacher_heatmap(model, batch, uv)
    expected = out.acc[:, None] * torch.sigmoid(HYPOTHESIS_GAIN * T + EVIDENCE_GAIN_WITH_HYPOTHESES * evidence
                                                + EVIDENCE_BIAS)
    torch.testing.assert_close(out.heatmaps, expected, atol=1e-5, rtol=1e-4)
    assert float(T.amax()) > 0.9  # some sampled pixels are near a triangulated joint
    np.testing.assert_allclose(enc.joints3d.double().numpy(), X, atol=1e-4)
    # the volumetric query: a point at a triangulated joint gets T = 1 for that joint
    j = int(np.flatnonzero(np.isfinite(X[:, 0]))[0])
    occ, heat = model.query_points(batch, torch.tensor(X[j:j + 1], dtype=torch.float32), enc)
    ev = ray_joint_evidence(torch.tensor(proj[j:j + 1, :2], dtype=torch.float32), batch.tgt_K, batch.tgt_w2c,
                            batch.near_far, enc.pose_heatmaps, batch.src_K, batch.src_w2c, (H, W), 32)
    pre = HYPOTHESIS_GAIN * 1.0 + EVIDENCE_GAIN_WITH_HYPOTHESES * ev[0, j] + EVIDENCE_BIAS
    torch.testing.assert_close(heat[0, j], torch.sigmoid(pre), atol=1e-4, rtol=1e-4)


def test_the_residual_student_starts_as_the_triangulated_teacher_whatever_the_geometry(example):
    """heatmap_residual: the priors enter after compositing, so a ray's heatmap starts as exactly
    sigmoid(8 T + 4 E - 4) with no factor acc (the untrained density does not blur it), and the MLP's output c
    is composited: with the last layer's bias at c and its weights at zero, a ray shows sigmoid(acc c + prior)."""
    model = GHNeRF(preset("ghnerf-mediapipe-hypotheses", heatmap_residual=True)).eval()
    batch = example.batch
    uv, enc, out, evidence = fine_rays_with_evidence(model, batch, 29)
    T, _, _ = _triangulated_teacher_heatmap(model, batch, uv)
    prior = HYPOTHESIS_GAIN * T + EVIDENCE_GAIN_WITH_HYPOTHESES * evidence + EVIDENCE_BIAS
    torch.testing.assert_close(out.heatmaps, torch.sigmoid(prior), atol=1e-5, rtol=1e-4)
    # the decoded peak of a joint is the triangulated teacher's (the pixel of the largest T)
    j = int(T.amax(0).argmax())
    assert int(out.heatmaps[:, j].argmax()) == int(T[:, j].argmax())
    torch.nn.init.constant_(model.heatmap_head.net[-1].bias, 1.5)
    _, _, shifted, _ = fine_rays_with_evidence(model, batch, 29)
    torch.testing.assert_close(shifted.heatmaps, torch.sigmoid(prior + 1.5 * shifted.acc[:, None]),
                               atol=1e-5, rtol=1e-4)


def test_hypotheses_at_the_rivals_tolerance_are_the_rivals_joints(example):
    """hypothesis_rel_threshold reaches the triangulation: at the rival's tolerance the student's hypotheses are
    exactly the lifted triangulated teacher's joints (ghnerf.eval.triangulated_teacher), at 0.05 they differ."""
    from ghnerf.base.tolerances import FEW_VIEWS_REL_THRESHOLD
    from ghnerf.eval.triangulated_teacher import lifted_triangulation

    batch = example.batch
    cams = [Camera(K=k, R=m[:3, :3], T=m[:3, 3]) for k, m in zip(batch.src_K.double().numpy(),
                                                                 batch.src_w2c.double().numpy())]
    joints = {}
    for tol in (FEW_VIEWS_REL_THRESHOLD, 0.05):
        model = GHNeRF(preset("ghnerf-mediapipe-hypotheses", hypothesis_rel_threshold=tol)).eval()
        with torch.no_grad():
            joints[tol] = model.encode(batch).joints3d.double().numpy()
    _, keypoints = model.encoder.heatmaps_and_keypoints(batch.src_images_unmasked)
    np.testing.assert_allclose(joints[FEW_VIEWS_REL_THRESHOLD], lifted_triangulation(cams, keypoints), atol=1e-4)
    assert not np.allclose(np.nan_to_num(joints[0.05]), np.nan_to_num(joints[FEW_VIEWS_REL_THRESHOLD]), atol=1e-3)
    with pytest.raises(ConfigError, match="hypothesis_rel_threshold"):
        preset("ghnerf-mediapipe-hypotheses", hypothesis_rel_threshold=0.0)


def test_heatmap_residual_needs_a_prior():
    with pytest.raises(ConfigError, match="heatmap_residual"):
        preset("ghnerf-resnet18", heatmap_residual=True)
    assert StudentConfig.from_dict({k: v for k, v in preset("ghnerf-mediapipe").to_dict().items()
                                    if k != "heatmap_residual"}).heatmap_residual is False


def test_teacher_free_hypotheses_triangulate_the_student_s_own_source_heatmaps(monkeypatch):
    """Without a pose network, the hypotheses are the peaks of the source heatmap head, decoded as the teachers'
    heatmaps are and triangulated: planted Gaussians at the planted joints' projections give the joints back."""
    from ghnerf.base.keypoint_codec import HeatmapCodec
    from ghnerf.student.model_io import MultiViewBatch

    model = GHNeRF(preset("ghnerf-resnet18-evidence", joint_hypotheses=True, pretrained="none")).eval()
    cams = CAMERAS[:3]
    K, w2c = (t.float() for t in _tensors(cams))
    planted = torch.tensor(np.stack([HeatmapCodec(stride=2).encode(kp, 128, 128)[0] for kp in _keypoints(cams)]))
    seen = []
    monkeypatch.setattr(model, "source_heatmaps", lambda human: seen.append(human.shape) or planted)
    batch = MultiViewBatch(src_images=torch.rand(3, 3, 128, 128), src_K=K, src_w2c=w2c, tgt_K=K[0],
                           tgt_w2c=_tensors(CAMERAS[3:])[1][0].float(), near_far=torch.tensor([1.0, 5.0]))
    with torch.no_grad():
        enc = model.encode(batch)
    assert seen == [(3, model.cfg.human_projection_dim, 64, 64)]  # read once, from the projected features
    np.testing.assert_allclose(enc.joints3d.numpy(), JOINTS, atol=2e-3)
    assert torch.equal(enc.pose_heatmaps, planted)  # and they are the ray evidence's heatmaps too (laid out to sample)
    empty = torch.zeros_like(planted)  # a head that sees no joint: no hypothesis, nothing invented
    monkeypatch.setattr(model, "source_heatmaps", lambda human: empty)
    with torch.no_grad():
        assert torch.isnan(model.encode(batch).joints3d).all()


def test_a_second_networks_keypoints_join_the_triangulation_as_observations_of_their_own():
    """``more_keypoints``: with 2 views, a joint one network misses in a view (or gets wrong there) comes back from
    the other network's keypoint of that view; a joint only one camera reports, by either network, stays missing."""
    cams = CAMERAS[:2]
    K, w2c = _tensors(cams)
    own, teacher = _keypoints(cams), _keypoints(cams)
    own[1, 3, 2] = 0  # joint 3: the student's own network misses it in view 1 ...
    own[0, 5, :2] += 40.0  # joint 5: ... and is 40 px off in view 0
    teacher[:, 3, :2] += 0.3  # the teacher sees joint 3 (0.3 px off) and joint 5 right
    teacher[0, 9, 2] = 0  # joint 9: the teacher misses it in view 0, the student has it in both views
    own[1, 11, 2] = teacher[1, 11, 2] = 0  # joint 11: view 0 alone, by both networks
    alone = triangulate_source_keypoints(own, K, w2c).numpy()
    assert np.isnan(alone[3]).all() and np.isnan(alone[5]).all()  # the own keypoints alone: 2 views, no agreement
    X = triangulate_source_keypoints(own, K, w2c, more_keypoints=teacher).numpy()
    good = [j for j in range(NUM_JOINTS) if j not in (3, 11)]
    np.testing.assert_allclose(X[good], JOINTS[good], atol=1e-6)
    assert np.linalg.norm(X[3] - JOINTS[3]) < 0.01
    assert np.isnan(X[11]).all()
    np.testing.assert_allclose(triangulate_source_keypoints(own, K, w2c, lift=True, more_keypoints=teacher)
                               .numpy()[good], X[good])
    with pytest.raises((ValueError, TypeCheckError), match="more_keypoints"):  # jaxtyping's check when it is on
        triangulate_source_keypoints(own, K, w2c, more_keypoints=teacher[:1])


def test_a_hypothesis_teacher_belongs_to_the_own_joint_hypotheses():
    assert preset("ghnerf-resnet18-hypotheses").hypothesis_teacher == "none"
    assert preset("ghnerf-resnet18-hypotheses", hypothesis_teacher="mediapipe").hypothesis_teacher == "mediapipe"
    for bad in (dict(name="ghnerf-resnet18-evidence", hypothesis_teacher="mediapipe"),  # no joint hypotheses
                dict(name="ghnerf-mediapipe-hypotheses", hypothesis_teacher="mediapipe")):  # already the teacher's
        with pytest.raises(ConfigError, match="hypothesis_teacher"):
            preset(**bad)
    old = preset("ghnerf-resnet18-hypotheses").to_dict()
    del old["hypothesis_teacher"]  # checkpoints written before the option existed
    assert StudentConfig.from_dict(old).hypothesis_teacher == "none"


def test_the_hypothesis_teachers_keypoints_are_triangulated_with_the_own_heatmaps_peaks(monkeypatch):
    """A student with ``hypothesis_teacher`` triangulates its own source heatmap peaks and the teacher's keypoints of
    the same (unmasked) source views together: own heatmaps that see nothing and a teacher that sees every joint give
    the teacher's joints; the teacher's misses leave the own peaks' joints."""
    pytest.importorskip("mediapipe", reason="mediapipe==0.10.14 is a core dependency; `make install` installs it")
    from ghnerf.base.keypoint_codec import HeatmapCodec
    from ghnerf.student.model_io import MultiViewBatch

    model = GHNeRF(preset("ghnerf-resnet18-hypotheses", hypothesis_teacher="mediapipe", pretrained="none",
                          lift_missing_joints=False)).eval()
    assert not list(model.hypothesis_teacher.parameters())  # frozen, nothing in checkpoints
    assert model.pretrained_weights.endswith(f"; hypothesis teacher: {model.hypothesis_teacher.weights_source}")
    assert "mediapipe" in model.pretrained_weights.split("; hypothesis teacher: ")[1].lower()
    # a run whose encoder weights were missing records that, and still the hypothesis teacher's network
    resolved = replace(model.cfg, losses=replace(model.cfg.losses, perceptual=0.0))  # as resolve_auto leaves it
    missing = AutoWeights(resolved, Path("/nowhere/resnet18.pth"), None).record(model.pretrained_weights)
    assert missing["pretrained_weights"] == (random_init_note(Path("/nowhere/resnet18.pth")) + "; hypothesis teacher: "
                                             + model.hypothesis_teacher.weights_source)
    cams = CAMERAS[:3]
    K, w2c = (t.float() for t in _tensors(cams))
    unmasked = torch.rand(3, 3, 128, 128)
    batch = MultiViewBatch(src_images=torch.rand(3, 3, 128, 128), src_K=K, src_w2c=w2c, tgt_K=K[0],
                           tgt_w2c=_tensors(CAMERAS[3:])[1][0].float(), near_far=torch.tensor([1.0, 5.0]),
                           src_images_unmasked=unmasked)
    teacher = _keypoints(cams)
    teacher[:, :4, 2] = 0  # the teacher misses joints 0-3 everywhere
    calls = []

    def fake_teacher(images, photos=None):
        calls.append(images)
        return None, teacher

    monkeypatch.setattr(model.hypothesis_teacher, "heatmaps_and_keypoints", fake_teacher)
    own = _keypoints(cams)
    own[:, 4:, 2] = 0  # the own head sees joints 0-3 only
    planted = torch.tensor(np.stack([HeatmapCodec(stride=2).encode(kp, 128, 128)[0] for kp in own]))
    monkeypatch.setattr(model, "source_heatmaps", lambda human: planted)
    with torch.no_grad():
        joints = model.encode(batch).joints3d.numpy()
    assert len(calls) == 1 and calls[0] is unmasked  # the teacher reads the photographs, not the masked images
    np.testing.assert_allclose(joints[4:], JOINTS[4:], atol=1e-4)  # the teacher's joints (exact keypoints)
    np.testing.assert_allclose(joints[:4], JOINTS[:4], atol=2e-3)  # the own peaks' (decoded from heatmaps)
    monkeypatch.setattr(model, "source_heatmaps", lambda human: torch.zeros_like(planted))
    with torch.no_grad():
        joints = model.encode(batch).joints3d.numpy()
    assert np.isnan(joints[:4]).all()  # neither network sees them
    np.testing.assert_allclose(joints[4:], JOINTS[4:], atol=1e-4)
