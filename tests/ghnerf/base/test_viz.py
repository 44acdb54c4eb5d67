"""Pictures: the reliability diagram's bars stand as high as their fractions."""

import numpy as np

from ghnerf.base.viz import reliability_diagram

BAR = (40, 110, 200)


def test_reliability_bars_are_as_high_as_the_fraction_within_pck():
    size, pad = 240, 24
    within = [None, 0.25, None, None, None, None, None, None, 0.5, 1.0]
    img = reliability_diagram(within, [0, 4, 0, 0, 0, 0, 0, 0, 2, 3], size)
    span = size - 2 * pad
    for b, rate in enumerate(within):
        x = pad + b * span // 10 + span // 20  # the bin's centre column
        bar = np.flatnonzero((img[:, x] == BAR).all(1))
        if rate is None:
            assert bar.size == 0, b
        else:
            assert bar.max() == size - pad - 1 and abs((size - pad - bar.min()) - rate * span) <= 1, b  # frame at the bottom
