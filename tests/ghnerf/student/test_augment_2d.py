"""The 2D pretraining's random warps: targets move with their joints, mirrors exchange left and right."""

import math

import numpy as np
import pytest
import torch

from ghnerf.base.body25 import BODY25_MIRROR, JOINT_INDEX, NUM_JOINTS
from ghnerf.base.keypoint_codec import HeatmapCodec
from ghnerf.student.augment_2d import Augment2D, ViewWarps

H, W = 96, 128  # not square: a rotation must not shear


def _warps(angle_deg=0.0, zoom=1.0, mirror=False, gain=1.0) -> ViewWarps:
    return ViewWarps(torch.tensor([math.radians(angle_deg)], dtype=torch.float64),
                     torch.tensor([zoom], dtype=torch.float64), torch.tensor([mirror]),
                     torch.tensor([gain], dtype=torch.float64))


def _keypoints() -> np.ndarray:
    kp = np.full((NUM_JOINTS, 3), np.nan)
    kp[:, 2] = 0.0
    kp[JOINT_INDEX["RWrist"]] = (50.0, 40.0, 1.0)
    kp[JOINT_INDEX["LWrist"]] = (80.0, 55.0, 1.0)
    kp[JOINT_INDEX["Neck"]] = (64.0, 30.0, 1.0)
    return kp


def _rotated_by_hand(xy: np.ndarray, angle_deg: float, zoom: float, mirror: bool) -> np.ndarray:
    """Where a pixel lands, computed independently: about the centre ((W-1)/2, (H-1)/2), mirror x, rotate
    counter-clockwise as the image is shown (y down), zoom."""
    c = np.array([(W - 1) / 2, (H - 1) / 2])
    d = xy - c
    if mirror:
        d = d * [-1, 1]
    t = math.radians(angle_deg)
    rot = np.array([[math.cos(t), math.sin(t)], [-math.sin(t), math.cos(t)]])  # ccw on screen, y down
    return (rot @ d) * zoom + c


@pytest.mark.parametrize("angle,zoom,mirror", [(0, 1, False), (25, 1, False), (-30, 1.2, False), (10, 0.8, True),
                                               (0, 1, True)])
def test_heatmap_peaks_move_exactly_as_their_joints(angle, zoom, mirror):
    codec = HeatmapCodec(stride=1, sigma=3.0)
    kp = _keypoints()
    maps = torch.from_numpy(codec.encode(kp, H, W)[0]).float()[None]
    images = torch.zeros(1, 3, H, W)
    valid = torch.ones(1, NUM_JOINTS, dtype=torch.bool)
    valid[0, JOINT_INDEX["LWrist"]] = False  # validity travels with its channel
    warps = _warps(angle, zoom, mirror)
    _, warped, warped_valid = warps.apply(images, maps, valid)
    decoded = codec.decode(warped[0].numpy())
    for name in ("RWrist", "LWrist", "Neck"):
        j = JOINT_INDEX[name]
        expected = _rotated_by_hand(kp[j, :2], angle, zoom, mirror)
        np.testing.assert_allclose(warps.transform_points(torch.tensor(kp[None, j:j + 1, :2]), H, W)[0, 0].numpy(),
                                   expected, atol=1e-6)
        now = BODY25_MIRROR[j] if mirror else j  # a mirrored right wrist is drawn as the left one
        np.testing.assert_allclose(decoded[now, :2], expected, atol=0.25)
    assert bool(warped_valid[0, JOINT_INDEX["RWrist" if mirror else "LWrist"]]) is False
    assert int(warped_valid.sum()) == NUM_JOINTS - 1


def test_the_image_moves_with_its_targets_and_brightness_is_clipped():
    codec = HeatmapCodec(stride=2, sigma=4.0)  # targets at half the image's resolution, as the pretraining's
    kp = _keypoints()
    maps = torch.from_numpy(codec.encode(kp, H, W)[0]).float()[None]
    images = torch.zeros(1, 3, H, W)
    x, y = kp[JOINT_INDEX["RWrist"], :2].astype(int)
    images[0, :, y - 1:y + 2, x - 1:x + 2] = 0.9  # a bright square on the right wrist
    warps = _warps(20, 1.1, False, gain=1.5)
    out, warped, _ = warps.apply(images, maps, torch.ones(1, NUM_JOINTS, dtype=torch.bool))
    assert float(out.max()) == 1.0  # 0.9 x 1.5 clipped
    gy, gx = np.unravel_index(int(out[0, 0].argmax()), (H, W))
    peak = codec.decode(warped[0].numpy())[JOINT_INDEX["RWrist"], :2]
    assert np.hypot(gx - peak[0], gy - peak[1]) <= 1.5


def test_no_warp_changes_nothing():
    gen = torch.Generator().manual_seed(0)
    images, maps = torch.rand(2, 3, H, W, generator=gen), torch.rand(2, NUM_JOINTS, H // 2, W // 2, generator=gen)
    valid = torch.rand(2, NUM_JOINTS, generator=gen) > 0.5
    none = ViewWarps(torch.zeros(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64),
                     torch.tensor([False, False]), torch.ones(2, dtype=torch.float64))
    out, out_maps, out_valid = none.apply(images, maps, valid)
    torch.testing.assert_close(out, images, atol=1e-5, rtol=0)
    torch.testing.assert_close(out_maps, maps, atol=1e-5, rtol=0)
    assert torch.equal(out_valid, valid)


def test_draws_stay_in_their_ranges_and_repeat_with_the_generator():
    ranges = Augment2D(rotation_deg=30.0, scale=1.25, mirror=0.5, brightness=0.2)
    a = ViewWarps.draw(4000, ranges, torch.Generator().manual_seed(3))
    b = ViewWarps.draw(4000, ranges, torch.Generator().manual_seed(3))
    assert torch.equal(a.angle, b.angle) and torch.equal(a.mirror, b.mirror)
    assert float(a.angle.abs().max()) <= math.radians(30) and float(a.angle.abs().max()) > math.radians(29)
    assert 1 / 1.25 - 1e-9 <= float(a.zoom.min()) and float(a.zoom.max()) <= 1.25 + 1e-9
    assert abs(float(torch.log(a.zoom).mean())) < 0.01  # log-uniform: as many zooms in as out
    assert 0.47 < float(a.mirror.double().mean()) < 0.53
    assert 0.8 - 1e-9 <= float(a.gain.min()) and float(a.gain.max()) <= 1.2 + 1e-9


def test_mirror_partners_are_an_involution_over_left_and_right():
    from ghnerf.base.body25 import BODY25_NAMES
    for j, partner in enumerate(BODY25_MIRROR):
        assert BODY25_MIRROR[partner] == j
        name, other = BODY25_NAMES[j], BODY25_NAMES[partner]
        assert (name == other) if name in ("Nose", "Neck", "MidHip") else (name[1:] == other[1:] and name != other)
