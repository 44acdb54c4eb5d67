"""Heatmap codec: encode/decode round trip, peak placement, missing joints."""

import numpy as np
import pytest

from ghnerf.base.errors import ConfigError
from ghnerf.base.keypoint_codec import HeatmapCodec


@pytest.mark.parametrize("stride", [1, 2, 4])
def test_round_trip_integer_and_subpixel(stride):
    codec = HeatmapCodec(stride=stride, sigma=6.0)
    rng = np.random.default_rng(0)
    kp = np.zeros((25, 3))
    kp[:, 0] = rng.uniform(10, 118, 25)
    kp[:, 1] = rng.uniform(10, 86, 25)
    kp[:5, :2] = np.round(kp[:5, :2])  # some integer positions
    kp[:, 2] = 1.0
    hm, missing = codec.encode(kp, 96, 128)
    assert hm.shape == (25, 96 // stride, 128 // stride) and not missing.any()
    dec = codec.decode(hm)
    np.testing.assert_allclose(dec[:, :2], kp[:, :2], atol=0.02)
    assert np.all(dec[:, 2] > 0.8)


def test_peak_is_at_the_joint_and_missing_joints_stay_zero():
    codec = HeatmapCodec(stride=1, sigma=3.0)
    kp = np.zeros((25, 3))
    kp[0] = (20, 30, 1.0)
    kp[1] = (5.0, 7.0, 0.0)        # confidence 0: missing
    kp[2] = (np.nan, np.nan, 1.0)  # NaN: missing
    hm, missing = codec.encode(kp, 64, 64)
    assert hm[0, 30, 20] == pytest.approx(1.0)
    assert hm[0, 30, 20 + 3] == pytest.approx(np.exp(-0.5), rel=1e-6)  # one sigma away
    assert missing[1] and missing[2] and not missing[0]
    assert hm[1].max() == 0 and hm[2].max() == 0
    dec = codec.decode(hm)
    assert dec[1, 2] == 0 and np.isnan(dec[1, 0])


def test_bad_codec_config():
    with pytest.raises(ConfigError):
        HeatmapCodec(stride=0)
    with pytest.raises(ConfigError):
        HeatmapCodec(sigma=-1)


def _gaussian_cells(xy, cov, stride, h, w):
    """A Gaussian heatmap written out here (not with the codec): cell (i, j) is centred on image pixel
    (j * stride + (stride - 1) / 2, i * stride + (stride - 1) / 2), pixel centres at integers."""
    cx = np.arange(w) * stride + (stride - 1) / 2
    cy = np.arange(h) * stride + (stride - 1) / 2
    d = np.stack(np.meshgrid(cx - xy[0], cy - xy[1]), -1)  # (h, w, 2) as (dx, dy)
    return np.exp(-0.5 * np.einsum("hwi,ij,hwj->hw", d, np.linalg.inv(cov), d))


def test_stride_2_joint_at_a_half_pixel_decodes_within_5_hundredths():
    """(20.5, 30.5) at stride 2 is the centre of cell (15, 10); a half-cell shift of the codec's cell centres
    (e.g. cell j at j * stride) puts it 0.5 px or more away."""
    hm = _gaussian_cells((20.5, 30.5), np.eye(2) * 7.0**2, 2, 32, 24)[None].repeat(25, 0)
    dec = HeatmapCodec(stride=2, sigma=7.0).decode(hm)
    np.testing.assert_allclose(dec[:, :2], np.tile([20.5, 30.5], (25, 1)), atol=0.05)


@pytest.mark.parametrize("xy", [(20.9, 31.3), (17.2, 28.6)])
def test_sub_pixel_decoding_of_a_tilted_gaussian(xy):
    """A correlated covariance: one parabola per axis through the arg-max row / column misses the peak; the
    2D quadratic (DARK) fit of the log is exact."""
    cov = np.array([[30.0, 18.0], [18.0, 20.0]])
    hm = _gaussian_cells(xy, cov, 2, 32, 24)[None]
    dec = HeatmapCodec(stride=2).decode(np.concatenate([hm, np.zeros((24, 32, 24))]))
    np.testing.assert_allclose(dec[0, :2], xy, atol=0.01)
    assert np.isnan(dec[1:, :2]).all() and (dec[1:, 2] == 0).all()


def test_a_peak_on_the_border_is_absent_not_clamped_to_the_edge():
    codec = HeatmapCodec(stride=1, sigma=3.0)
    ramp = np.tile(np.linspace(0.1, 0.9, 64)[:, None], (1, 48))  # rises to the bottom edge (y = 63)
    outside = _gaussian_cells((20.0, 66.0), np.eye(2) * 9.0, 1, 64, 48)  # joint below the image
    inside = _gaussian_cells((20.0, 60.0), np.eye(2) * 9.0, 1, 64, 48)
    dec = codec.decode(np.stack([ramp, outside, inside]))
    assert np.isnan(dec[:2, :2]).all() and (dec[:2, 2] == 0).all()
    np.testing.assert_allclose(dec[2], (20.0, 60.0, 1.0), atol=1e-6)


def test_a_weak_peak_is_absent_with_confidence_exactly_zero():
    hm = 0.04 * _gaussian_cells((20.0, 20.0), np.eye(2) * 9.0, 1, 40, 40)[None]
    dec = HeatmapCodec(stride=1).decode(hm, threshold=0.05)
    assert dec[0, 2] == 0 and np.isnan(dec[0, :2]).all()
    dec = HeatmapCodec(stride=1).decode(hm * 2, threshold=0.05)
    assert dec[0, 2] == pytest.approx(0.08)
