"""The triangulated-teacher baseline on planted keypoints with analytic cameras (a ring of 8 look-at cameras)."""

import numpy as np

from ghnerf.base.body25 import NUM_JOINTS
from ghnerf.base.cameras import Camera, look_at
from ghnerf.data.images import pinhole
from ghnerf.eval.metrics import pck
from ghnerf.eval.triangulated_teacher import (
    ALL_CAMERAS,
    frame_triangulation,
    held_out_teacher,
    plain_triangulation,
    project_joints,
    robust_triangulation,
)
from ghnerf.student.data import ExampleSet

K = np.array([[200.0, 0.0, 128.0], [0.0, 200.0, 128.0], [0.0, 0.0, 1.0]])


def ring(n: int = 8) -> list[Camera]:
    out = []
    for i in range(n):
        a = 2 * np.pi * i / n
        R, T = look_at(np.array([3.0 * np.cos(a), 3.0 * np.sin(a), 0.5]), np.zeros(3))
        out.append(Camera(K.copy(), R, T, height=256, width=256))
    return out


def planted(cams, X, conf=1.0) -> np.ndarray:
    kp = np.full((len(cams), NUM_JOINTS, 3), conf)
    for c, cam in enumerate(cams):
        kp[c, :, :2] = cam.project(X, distort=False)
    return kp


X = np.random.default_rng(0).uniform([-0.25, -0.25, -0.85], [0.25, 0.25, 0.85], size=(NUM_JOINTS, 3))


def test_exact_keypoints_reproject_exactly_into_the_held_out_view():
    cams = ring()
    src, target = cams[:3], cams[5]
    kp = planted(src, X)
    expected = target.project(X, distort=False)
    for fn in (plain_triangulation, robust_triangulation):
        X3 = fn(src, kp)
        np.testing.assert_allclose(X3, X, atol=1e-6)
        proj = project_joints(target, X3)
        np.testing.assert_allclose(proj[:, :2], expected, atol=1e-4)
        assert (proj[:, 2] == 1).all()


def test_joints_fewer_than_two_views_report_are_missing():
    cams = ring()[:3]
    kp = planted(cams, X)
    kp[0, 4, 2] = 0.0  # joint 4 in 2 views: still triangulated
    kp[0, 7, 2] = kp[1, 7, 2] = 0.0  # joint 7 in 1 view: missing
    kp[2, 9, :2] = np.nan
    kp[1, 9, 2] = 0.0
    X3 = plain_triangulation(cams, kp)
    np.testing.assert_allclose(X3[4], X[4], atol=1e-6)
    assert np.isnan(X3[7]).all() and np.isnan(X3[9]).all()
    proj = project_joints(ring()[5], X3)
    assert np.isnan(proj[7, :2]).all() and proj[7, 2] == 0 and proj[4, 2] == 1


def test_frame_triangulation_groups_the_views_of_each_frame():
    cams = ring()
    Y = X + np.array([0.1, 0.0, 0.0])  # a second frame: the body moved 10 cm
    kp = np.concatenate([planted(cams[:3], X), planted(cams[3:5], Y), planted(cams[5:6], X)])
    frames = ["a", "a", "a", "b", "b", "c"]  # frame c has one view: nothing to triangulate
    out = frame_triangulation(cams[:6], kp, frames)
    np.testing.assert_allclose(out[:3], np.broadcast_to(X, (3, NUM_JOINTS, 3)), atol=1e-6)
    np.testing.assert_allclose(out[3:5], np.broadcast_to(Y, (2, NUM_JOINTS, 3)), atol=1e-6)
    assert np.isnan(out[5]).all()


def test_plain_dlt_is_confidence_weighted():
    cams = ring()[:3]
    kp = planted(cams, X)
    kp[2, :, :2] += 25.0  # a bad view...
    kp[2, :, 2] = 1e-9  # ...with almost no confidence barely moves the point
    np.testing.assert_allclose(plain_triangulation(cams, kp), X, atol=1e-4)
    kp[2, :, 2] = 1.0
    assert np.linalg.norm(plain_triangulation(cams, kp) - X, axis=1).min() > 1e-3


def test_an_outlier_view_is_rejected_by_the_robust_variant_only():
    cams = ring()
    src, target = [cams[i] for i in (0, 1, 2, 3)], cams[6]
    kp = planted(src, X)
    kp[1, :, :2] += 40.0  # one source view 40 px off on every joint
    expected = target.project(X, distort=False)
    robust = project_joints(target, robust_triangulation(src, kp))
    np.testing.assert_allclose(robust[:, :2], expected, atol=1e-4)
    plain = project_joints(target, plain_triangulation(src, kp))
    assert np.linalg.norm(plain[:, :2] - expected, axis=1).min() > 1.0


class PlantedStore:
    """A teacher whose keypoints are the exact projections of the dataset's 3D joints; records the views read."""

    def __init__(self, examples: ExampleSet):
        self.examples, self.read = examples, []

    def keypoints(self, subject, frame_id, camera):
        self.read.append((subject, frame_id, camera))
        seq = self.examples.reader.sequence(subject)
        frame = next(seq.frame(f) for f in range(seq.num_frames) if seq.frame(f).frame_id == frame_id)
        view = next(v for v in frame.views if v.name == camera)
        kp = np.ones((NUM_JOINTS, 3))
        kp[:, :2] = pinhole(view.camera).project(frame.joints3d, distort=False)
        return kp


def test_held_out_views_use_the_students_source_views_and_reproject_exactly(student_root):
    examples = ExampleSet(student_root, "test", source_views=3, heatmaps="none")
    store = PlantedStore(examples)
    res = held_out_teacher(examples, store, max_views=3)
    assert len(res.keys) == 3 and res.triangulated["dlt"].shape == (3, NUM_JOINTS, 3)
    for i in range(3):
        ex = examples.example(i)
        # the views read for held-out view i are its Example's source views, then the view itself
        read = store.read[4 * i:4 * i + 4]
        assert read[3] == ex.key
        frame = examples.reader.sequence(ex.key[0]).frame(examples.items[i][1])
        w2c = {v.name: v.camera.world_to_cam for v in frame.views}
        np.testing.assert_allclose(np.stack([w2c[c] for _, _, c in read[:3]]), ex.batch.src_w2c.numpy(), atol=1e-5)
        # exact teacher: both triangulations reproject onto the projected 3D joints, at the evaluation's scale
        tgt = pinhole(frame.views[examples.items[i][2]].camera)
        expected = tgt.project(frame.joints3d, distort=False) * examples.scale
        for m in ("dlt", "robust"):
            np.testing.assert_allclose(res.triangulated[m][i, :, :2], expected, atol=1e-3)
        np.testing.assert_allclose(res.on_view[i, :, :2], expected, atol=1e-9)
        np.testing.assert_allclose(res.gt2d[i], ex.joints2d.numpy(), atol=1e-4)
    assert res.mpjpe("dlt") < 1e-6 and res.mpjpe("robust") < 1e-6
    # its cameras are the held-out views' in the evaluation's pixels: the ground truth's 2D joints are their
    # projections of the 3D ones
    for i in range(3):
        np.testing.assert_allclose(res.cameras[i].project(res.gt3d[i], distort=False), res.gt2d[i, :, :2], atol=1e-3)
    assert pck(res.triangulated["robust"], res.gt2d).value == pck(res.on_view, res.gt2d).value
    # a triangulation of the caller's own, by name (benchmarks/triangulation_tolerance.py): the same views, its points
    mine = held_out_teacher(examples, PlantedStore(examples), max_views=3, methods={"mine": plain_triangulation})
    assert list(mine.triangulated) == ["mine"]
    np.testing.assert_array_equal(mine.triangulated["mine"], res.triangulated["dlt"])


def test_the_label_ceiling_triangulates_every_camera_and_areas_are_the_example_masks(student_root):
    examples = ExampleSet(student_root, "test", source_views=2, heatmaps="none")
    store = PlantedStore(examples)
    res = held_out_teacher(examples, store, max_views=2, methods=("robust",), all_cameras=True, areas=True)
    for i in range(2):
        subject, f, cam = examples.items[i]
        frame = examples.reader.sequence(subject).frame(f)
        read = {c for s, fid, c in store.read if (s, fid) == (subject, frame.frame_id)}
        assert read == {v.name for v in frame.views}  # all 8 cameras, the held-out one included
        expected = pinhole(frame.views[cam].camera).project(frame.joints3d, distort=False) * examples.scale
        np.testing.assert_allclose(res.triangulated[ALL_CAMERAS][i, :, :2], expected, atol=1e-3)
        assert res.areas[i] == examples.example(i).mask.numpy().sum() > 0
    assert res.mpjpe(ALL_CAMERAS) < 1e-6


def test_the_label_ceiling_outvotes_source_views_that_agree_on_a_wrong_joint(student_root):
    """Two source views that place a wrist 40 px off lose it for the 2-view triangulation (dropped or misplaced);
    the other 6 cameras outvote them."""
    examples = ExampleSet(student_root, "test", source_views=2, heatmaps="none")
    store = PlantedStore(examples)
    subject, f, cam = examples.items[0]
    frame = examples.reader.sequence(subject).frame(f)
    sources = {frame.views[s].name for s in examples.sources(0)}
    exact = store.keypoints

    def shifted(subject_, frame_id, camera):
        kp = exact(subject_, frame_id, camera)
        if camera in sources:
            kp[4, :2] += 40.0  # BODY_25 4: right wrist
        return kp

    store.keypoints = shifted
    res = held_out_teacher(examples, store, max_views=1, methods=("robust",), all_cameras=True)
    expected = pinhole(frame.views[cam].camera).project(frame.joints3d, distort=False) * examples.scale
    assert not np.linalg.norm(res.triangulated["robust"][0, 4, :2] - expected[4]) < 5  # NaN (dropped) or off
    assert np.linalg.norm(res.triangulated[ALL_CAMERAS][0, 4, :2] - expected[4]) < 1e-2


class BlindStore(PlantedStore):
    """PlantedStore that reports nothing of ``joints`` in any view but the first it is asked for in each frame."""

    def __init__(self, examples: ExampleSet, joints: list[int]):
        super().__init__(examples)
        self.joints, self.first = joints, {}

    def keypoints(self, subject, frame_id, camera):
        kp = super().keypoints(subject, frame_id, camera)
        if self.first.setdefault((subject, frame_id), camera) != camera:
            kp[self.joints, 2] = 0.0
        return kp


def test_a_second_network_pooled_with_the_teacher_fills_the_joints_it_misses(student_root):
    """``pooled_with``: the joints the teacher reports in one source view only are missing from its own robust
    triangulation and come back, exactly, from a second network's keypoints of the same views; the label ceiling
    and the teacher's own keypoints of the held-out view stay the teacher's."""
    examples = ExampleSet(student_root, "test", source_views=2, heatmaps="none")
    blind = [3, 8, 12]
    alone = held_out_teacher(examples, BlindStore(examples, blind), max_views=2, methods=("robust", "lifted"))
    pooled = held_out_teacher(examples, BlindStore(examples, blind), max_views=2, methods=("robust", "lifted"),
                              pooled_with=PlantedStore(examples), all_cameras=True)
    assert np.isnan(alone.joints3d["robust"][:, blind]).all()
    np.testing.assert_allclose(pooled.joints3d["robust"], pooled.gt3d, atol=1e-6)
    np.testing.assert_allclose(pooled.joints3d["lifted"], pooled.gt3d, atol=1e-6)
    np.testing.assert_array_equal(pooled.on_view, alone.on_view)
    assert np.isnan(pooled.joints3d[ALL_CAMERAS][:, blind]).all()  # the ceiling is the teacher's alone: not pooled
