"""Virtual camera paths: orbits look at the subject and stay level, interpolation passes through the captures."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from ghnerf.base.body25 import JOINT_INDEX as J
from ghnerf.base.errors import ConfigError
from ghnerf.render.cameras_path import camera_path, interpolate_path, orbit_path, ring_order
from ghnerf.render.scene import frame_indices, open_scene


@pytest.fixture(scope="module")
def scene(student_root):
    return open_scene(student_root, "CoreView_901", ":", 0.5, 3)


def test_orbit_looks_at_the_subject_from_the_captures_mean_height_and_radius(scene):
    frame = scene.sequence.frame(0)
    centre = scene.body_centre()
    cams = orbit_path(scene.captures, centre, 12)
    assert len(cams) == 12 and all((c.height, c.width) == (64, 64) for c in cams)
    # the subject's own joints (not the box centre the orbit aims at) land near the image centre in every view
    joints = frame.joints3d
    for cam in cams:
        uv = cam.project(joints.mean(axis=0)[None])[0]
        assert np.linalg.norm(uv - (31.5, 31.5)) < 3.0, uv
        nose, hip = cam.project(joints[[J["Nose"], J["MidHip"]]])
        assert nose[1] < hip[1] - 5  # upright: the head is above the hips in the image
    # hand-computed: the synthetic rig's up is +z; mean camera height above the centre and horizontal distance
    offsets = np.stack([c.center for c in scene.captures]) - centre
    height, radius = offsets[:, 2].mean(), np.linalg.norm(offsets[:, :2], axis=1).mean()
    for cam in cams:
        d = cam.center - centre
        assert d[2] == pytest.approx(height, abs=1e-3) and np.linalg.norm(d[:2]) == pytest.approx(radius, abs=1e-3)
    # one full turn in equal steps, starting at the first capture camera's azimuth
    az = np.unwrap([np.arctan2(*(c.center - centre)[[1, 0]]) for c in cams])
    np.testing.assert_allclose(np.diff(az), np.full(11, np.sign(az[1] - az[0]) * 2 * np.pi / 12), atol=1e-6)
    assert az[0] == pytest.approx(np.arctan2(offsets[0, 1], offsets[0, 0]), abs=1e-6)


def test_interpolation_passes_exactly_through_the_capture_cameras_at_its_knots(scene):
    centre = scene.body_centre()
    knots = [scene.captures[i] for i in ring_order(scene.captures, centre)]
    assert sorted(ring_order(scene.captures, centre)) == list(range(8))
    cams = interpolate_path(knots, 3 * len(knots))
    for k, knot in enumerate(knots):
        c = cams[3 * k]
        np.testing.assert_allclose(c.R, knot.R, atol=1e-9)
        np.testing.assert_allclose(c.T, knot.T, atol=1e-9)
        np.testing.assert_allclose(c.K, knot.K, atol=1e-9)
    # in between: centre on the chord, rotation a third of the way along the geodesic (slerp)
    a, b, mid = knots[0], knots[1], cams[1]
    np.testing.assert_allclose(mid.center, a.center + (b.center - a.center) / 3, atol=1e-9)
    angle = lambda r1, r2: Rotation.from_matrix(r1 @ r2.T).magnitude()  # noqa: E731
    assert angle(a.R, mid.R) == pytest.approx(angle(a.R, b.R) / 3, rel=1e-6)
    assert angle(mid.R, b.R) == pytest.approx(2 * angle(a.R, b.R) / 3, rel=1e-6)
    # the loop closes: the last view lies between the last knot and the first
    np.testing.assert_allclose(cams[-1].center, knots[-1].center + (knots[0].center - knots[-1].center) * 2 / 3,
                               atol=1e-9)


def test_interpolation_starts_at_capture_camera_0_whatever_its_azimuth_rounds_to():
    """A ring where camera 0's azimuth about the rig's up computes as a tiny negative number (it wrapped to 2 pi
    and the path started at camera 1)."""
    from ghnerf.base.cameras import Camera
    from ghnerf.render.cameras_path import look_at

    rng = np.random.default_rng(0)
    radius, start, centre = rng.uniform(2, 4), rng.uniform(0, 2 * np.pi), rng.uniform(-1, 1, 3).round(3)
    cams = []
    for k in range(8):
        t = start + 2 * np.pi * k / 8
        eye = centre + np.array([radius * np.cos(t), radius * np.sin(t), rng.uniform(0.5, 1.5)])
        R, T = look_at(eye, centre, np.array([0.0, 0.0, 1.0]))
        cams.append(Camera(np.array([[100.0, 0, 32], [0, 100, 32], [0, 0, 1]]), R, T, np.zeros(5), 64, 64))
    assert ring_order(cams, centre) == list(range(8))
    path = camera_path("interpolate", cams, centre, 16)
    np.testing.assert_allclose(path[0].R, cams[0].R, atol=1e-9)
    np.testing.assert_allclose(path[2].center, cams[1].center, atol=1e-9)


def test_paths_and_frame_selection_refuse_bad_input(scene):
    assert camera_path("cameras", scene.captures, scene.body_centre(), 5) == scene.captures
    with pytest.raises(ConfigError, match="choose one of orbit, interpolate, cameras"):
        camera_path("spiral", scene.captures, scene.body_centre(), 4)
    assert frame_indices("0:100:2", 10) == [0, 2, 4, 6, 8]
    assert frame_indices("3", 10) == [3] and frame_indices("-1", 10) == [9] and frame_indices(":", 3) == [0, 1, 2]
    for bad in ("a:b", "1:2:0", "1:2:3:4", ""):
        with pytest.raises(ConfigError, match="START:STOP"):
            frame_indices(bad, 10)
    with pytest.raises(ConfigError, match="selects none"):
        frame_indices("20:30", 10)


def test_default_interpolation_shows_views_between_every_pair_of_capture_cameras(scene):
    """With 4 frames and 8 cameras the default interpolation has 24 views: every third one a capture camera, the
    two between it and the next strictly between them (it was 4 views, every other capture camera)."""
    from ghnerf.render.cameras_path import default_views

    captures = scene.captures
    views = default_views("interpolate", 4, len(captures))
    assert views == 3 * len(captures) and default_views("orbit", 4, len(captures)) == 4
    assert default_views("orbit", 1, len(captures)) == 24
    path = camera_path("interpolate", captures, scene.body_centre(), views)
    order = ring_order(captures, scene.body_centre())
    for k, i in enumerate(order):
        np.testing.assert_allclose(path[3 * k].center, captures[i].center, atol=1e-9)
        nxt = captures[order[(k + 1) % len(order)]].center
        for j in (1, 2):  # between the knot and the next one, on the chord's side of neither
            c = path[3 * k + j].center
            assert np.linalg.norm(c - captures[i].center) > 1e-3 and np.linalg.norm(c - nxt) > 1e-3

