"""Multi-view ray evidence: analytic cameras and planted heatmaps, the student's use of it, and real teacher maps."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from ghnerf.base.cameras import Camera, look_at
from ghnerf.base.errors import ConfigError
from ghnerf.eval.metrics import openpose_keypoints, pck
from ghnerf.student.config import StudentConfig, preset
from ghnerf.student.geometry import pixel_grid
from ghnerf.student.model import EVIDENCE_BIAS, EVIDENCE_GAIN, GHNeRF
from ghnerf.student.ray_evidence import ray_joint_evidence

SIZE = 64
JOINT = np.array([0.05, -0.1, 1.02])
K_NP = np.array([[70.0, 0, 31.5], [0, 70.0, 31.5], [0, 0, 1]])


def _camera(eye) -> Camera:
    R, T = look_at(np.asarray(eye, float), np.array([0.0, 0.0, 1.0]))
    return Camera(K_NP, R, T, height=SIZE, width=SIZE)


SOURCES = [_camera(e) for e in ([2.5, 0.3, 1.4], [-0.4, 2.6, 1.1], [-2.2, -1.3, 0.8])]
TARGET = _camera([1.6, 1.9, 1.3])


def _tensors(cams):
    K = torch.tensor(np.stack([c.K for c in cams]), dtype=torch.float32)
    w2c = torch.tensor(np.stack([c.world_to_cam for c in cams]), dtype=torch.float32)
    return K, w2c


def _planted_heatmaps(sigma=2.0):
    """Per source view, 2 joint channels: joint 0 a Gaussian at the view's projection of JOINT, joint 1 empty."""
    ys, xs = np.mgrid[:SIZE, :SIZE]
    maps = np.zeros((len(SOURCES), 2, SIZE, SIZE))
    for v, cam in enumerate(SOURCES):
        u, w = cam.project(JOINT[None])[0]
        maps[v, 0] = np.exp(-((xs - u) ** 2 + (ys - w) ** 2) / (2 * sigma**2))
    return maps


def _expected(maps, uv, near, far, samples, over_views=np.mean):
    """Independently: numpy back-projection / projection and scipy's bilinear interpolation; ``over_views`` pools
    the views at each point (the evidence: their mean; the agreement: their minimum)."""
    out = []
    for p in uv:
        ray = np.linalg.inv(TARGET.K) @ np.array([p[0], p[1], 1.0])
        best = np.full(maps.shape[1], -np.inf)
        for z in np.linspace(near, far, samples):
            X = TARGET.R.T @ (ray * z - TARGET.T)
            vals = [[ndimage.map_coordinates(maps[v, j], [[uvs[1]], [uvs[0]]], order=1, cval=0.0)[0]
                     for j in range(maps.shape[1])] for v, uvs in enumerate(c.project(X[None])[0] for c in SOURCES)]
            best = np.maximum(best, over_views(vals, axis=0))
        out.append(best)
    return np.array(out)


def _evidence(maps, uv, near, far, samples, agreement=False):
    src_K, src_w2c = _tensors(SOURCES)
    K, w2c = _tensors([TARGET])
    return ray_joint_evidence(torch.tensor(uv, dtype=torch.float32), K[0], w2c[0], torch.tensor([near, far]),
                              torch.tensor(maps, dtype=torch.float32), src_K, src_w2c, (SIZE, SIZE), samples,
                              agreement=agreement).numpy()


def test_the_views_agreement_is_high_only_where_every_view_sees_the_joint():
    maps = _planted_heatmaps()
    z = float(TARGET.to_camera(JOINT[None])[0, 2])
    near, far, samples = z - 0.3, z + 0.3, 7
    on = TARGET.project(JOINT[None])[0]
    uv = np.stack([on, on + [8.0, 0.0], on + [0.0, -12.0]])
    both = _evidence(maps, uv, near, far, samples, agreement=True)  # (R, 2, J): evidence, agreement
    np.testing.assert_allclose(both[:, 0], _evidence(maps, uv, near, far, samples), atol=0)
    np.testing.assert_allclose(both[:, 1], _expected(maps, uv, near, far, samples, over_views=np.min), atol=2e-5)
    assert both[0, 1, 0] > 0.9 and np.all(both[:, 1] <= both[:, 0] + 1e-7)
    missed = maps.copy()
    missed[2] = 0.0  # one view did not see the joint: no point of any ray has every view's support
    both = _evidence(missed, uv, near, far, samples, agreement=True)
    assert np.all(both[:, 1] == 0) and both[0, 0, 0] > 0.6


def test_the_ray_through_the_joint_carries_every_views_peak():
    maps = _planted_heatmaps()
    z = float(TARGET.to_camera(JOINT[None])[0, 2])
    near, far, samples = z - 0.3, z + 0.3, 7  # the joint's depth is the 4th sample
    on = TARGET.project(JOINT[None])[0]
    uv = np.stack([on, on + [8.0, 0.0], on + [0.0, -12.0]])
    got = _evidence(maps, uv, near, far, samples)
    np.testing.assert_allclose(got, _expected(maps, uv, near, far, samples), atol=2e-5)
    assert got[0, 0] > 0.9  # the joint's ray: all three views at their peaks (bilinear between pixels)
    assert got[1, 0] < 0.5 * got[0, 0] and got[2, 0] < 0.5 * got[0, 0]  # rays that pass beside it
    assert np.all(got[:, 1] == 0)  # a joint no view saw


def test_a_view_that_missed_the_joint_costs_its_share():
    maps = _planted_heatmaps()
    z = float(TARGET.to_camera(JOINT[None])[0, 2])
    on = TARGET.project(JOINT[None])[0][None]
    full = _evidence(maps, on, z - 0.3, z + 0.3, 7)[0, 0]
    maps[2, 0] = 0.0
    partial = _evidence(maps, on, z - 0.3, z + 0.3, 7)[0, 0]
    np.testing.assert_allclose(partial, _expected(maps, on, z - 0.3, z + 0.3, 7)[0, 0], atol=2e-5)
    assert 0.55 * full < partial < 0.72 * full  # two of three views: about 2/3 of the full evidence


def test_a_ray_needs_two_samples():
    on = TARGET.project(JOINT[None])[0][None]
    with pytest.raises(ValueError, match="at least 2 samples"):
        _evidence(_planted_heatmaps(), on, 1.0, 2.0, 1)


def test_ray_evidence_needs_a_pose_encoder_and_two_samples():
    with pytest.raises(ConfigError, match="pose network"):
        preset("ghnerf-resnet18", ray_evidence_samples=32)
    with pytest.raises(ConfigError, match="at least 2"):
        preset("ghnerf-mediapipe", ray_evidence_samples=1)
    old = preset("ghnerf-mediapipe").to_dict()
    del old["ray_evidence_samples"]  # checkpoints written before the option existed
    assert StudentConfig.from_dict(old).ray_evidence_samples == 0


@pytest.fixture(scope="module")
def mediapipe():
    """Only the tests that run the pose network need it (a core dependency: `make install` installs it)."""
    return pytest.importorskip("mediapipe", reason="mediapipe==0.10.14 is a core dependency; `make install` "
                                                   "installs it")


@pytest.fixture(scope="module")
def example(student_root):
    from ghnerf.student.data import ExampleSet

    return ExampleSet(student_root, "test", image_scale=1.0).example(0)


def fine_rays_with_evidence(model: GHNeRF, batch, every: int):
    """Every ``every``-th pixel of the target rendered at the fine level (eval, no grad), with the encoding and the
    rays' ray evidence (32 samples) computed here from the encoder's heatmaps: (uv, encoding, outputs, evidence)."""
    H, W = batch.image_size
    uv = pixel_grid(H, W).view(-1, 2)[::every]
    with torch.no_grad():
        enc = model.encode(batch)
        out = model(batch, [uv.new_zeros((0, 2)), uv], encoding=enc)[-1]
        evidence = ray_joint_evidence(uv, batch.tgt_K, batch.tgt_w2c, batch.near_far, enc.pose_heatmaps,
                                      batch.src_K, batch.src_w2c, (H, W), 32)
    return uv, enc, out, evidence


@pytest.mark.usefixtures("mediapipe")
def test_the_student_starts_as_the_calibrated_evidence(example):
    """The heatmap head's MLP starts at zero: every sample's heatmap is sigmoid(8 E - 4), rendered with the
    compositing weights, so a ray shows acc * sigmoid(8 E - 4)."""
    model = GHNeRF(preset("ghnerf-mediapipe")).eval()
    batch = example.batch
    uv, enc, out, evidence = fine_rays_with_evidence(model, batch, 37)
    expected = out.acc[:, None] * torch.sigmoid(EVIDENCE_GAIN * evidence + EVIDENCE_BIAS)
    torch.testing.assert_close(out.heatmaps, expected, atol=1e-5, rtol=1e-4)
    assert float(evidence.amax()) > 0.5
    # the volumetric query reads the same evidence (each point's own target ray): points at four depths on the
    # rays of the strongest and the weakest pixel (back-projected here in numpy) get those rays' sigmoid(8 E - 4)
    rays = torch.stack([evidence.amax(1).argmax(), evidence.amax(1).argmin()])
    K, w2c = batch.tgt_K.double().numpy(), batch.tgt_w2c.double().numpy()
    near, far = batch.near_far.tolist()
    pts = np.array([w2c[:3, :3].T @ (z * np.linalg.solve(K, [*uv[r].tolist(), 1.0]) - w2c[:3, 3])
                    for r in rays for z in np.linspace(near, far, 6)[1:-1]])
    occ, heat = model.query_points(batch, torch.tensor(pts, dtype=torch.float32), enc)
    expected = torch.sigmoid(EVIDENCE_GAIN * evidence[rays] + EVIDENCE_BIAS).repeat_interleave(4, dim=0)
    torch.testing.assert_close(heat, expected, atol=1e-4, rtol=1e-4)  # float32 round trip through the volume grid
    assert float((heat[:4] - heat[4:]).abs().max()) > 0.1 and occ.shape == (8,)  # two different rays
    # without the evidence the head reads nothing of it and starts elsewhere
    plain = GHNeRF(preset("ghnerf-mediapipe", ray_evidence_samples=0)).eval()
    assert plain.encode(batch).pose_heatmaps is None
    assert plain.heatmap_head.prior_gain is None


@pytest.mark.usefixtures("mediapipe")
def test_real_teacher_maps_locate_held_out_views_joints(student_root):
    """MediaPipe's heatmaps of the three source photographs, pooled along the rays of a target camera they do
    not include, put the joints where the dataset has them (geometry and resolution conventions agree); with
    the target camera's principal point moved by 6 px they do not (the test can fail)."""
    from ghnerf.student.data import ExampleSet

    views = ExampleSet(student_root, "test", image_scale=1.0)
    model = GHNeRF(preset("ghnerf-mediapipe")).eval()
    shift = torch.tensor([[0, 0, 6.0], [0, 0, 6.0], [0, 0, 0]])
    kps, shifted_kps, gts = [], [], []
    for i in range(4):
        ex = views.example(i)
        b = ex.batch
        H, W = b.image_size
        uv = pixel_grid(H, W).view(-1, 2)
        with torch.no_grad():
            enc = model.encode(b)
            for K, out in ((b.tgt_K, kps), (b.tgt_K + shift, shifted_kps)):
                ev = ray_joint_evidence(uv, K, b.tgt_w2c, b.near_far, enc.pose_heatmaps, b.src_K, b.src_w2c,
                                        (H, W), 32)
                out.append(openpose_keypoints(ev.T.reshape(25, H, W).numpy()))
        gts.append(ex.joints2d.numpy())
    res, shifted = pck(np.stack(kps), np.stack(gts)), pck(np.stack(shifted_kps), np.stack(gts))
    assert res.evaluated >= 80 and res.value >= 0.6, res.per_joint
    assert shifted.value < 0.3


@pytest.mark.usefixtures("mediapipe")
def test_the_agreement_prior_starts_unread(example, monkeypatch):
    """With ``ray_evidence_agreement`` the heatmap head reads one more prior per joint, with its own gain starting at
    0: the rendered heatmaps do not depend on it until training moves that gain."""
    import ghnerf.student.model as model_module

    model = GHNeRF(preset("ghnerf-mediapipe-hypotheses", ray_evidence_agreement=True)).eval()
    assert model.num_priors == 3 and model.heatmap_head.prior_gain.shape == (3, 25)
    assert torch.all(model.heatmap_head.prior_gain[2] == 0)
    rays = [torch.zeros(0, 2), pixel_grid(*example.image.shape[:2]).view(-1, 2)[::53]]
    with torch.no_grad():
        first = model(example.batch, rays)[-1].heatmaps
        real = model_module.ray_joint_evidence

        def scrambled(*args, **kwargs):  # the same evidence, another agreement
            out = real(*args, **kwargs)
            return torch.stack([out[:, 0], torch.rand_like(out[:, 1])], dim=1)

        monkeypatch.setattr(model_module, "ray_joint_evidence", scrambled)
        torch.testing.assert_close(model(example.batch, rays)[-1].heatmaps, first, atol=1e-6, rtol=0)
        model.heatmap_head.prior_gain.data[2] = 4.0  # once read, it changes them
        assert float((model(example.batch, rays)[-1].heatmaps - first).abs().max()) > 1e-3
    started = GHNeRF(preset("ghnerf-mediapipe-hypotheses", ray_evidence_agreement=True,
                            ray_evidence_agreement_gain=4.0))
    assert torch.all(started.heatmap_head.prior_gain[2] == 4.0)  # read from the start when asked
    with pytest.raises(ConfigError, match="needs ray_evidence_samples"):
        preset("ghnerf-mediapipe-hypotheses", ray_evidence_samples=0, ray_evidence_agreement=True)
