"""Heatmap codec: encode/decode round trip, peak placement, missing joints."""

import numpy as np
import pytest

from ghnerf.base.keypoint_codec import HeatmapCodec
from ghnerf.base.errors import ConfigError


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
