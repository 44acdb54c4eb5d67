"""Volume rendering and depth-guided sampling against analytic answers."""

import math

import numpy as np
import pytest
import torch

from ghnerf.base.cameras import look_at
from ghnerf.student.cost_volume import DepthEstimate, depth_regression, plane_values
from ghnerf.student.geometry import backproject, project, ray_depth_grids
from ghnerf.student.renderers import accumulation, alpha_from_density, composite, compositing_weights
from ghnerf.student.samplers import depth_guided_samples


def test_constant_density_matches_the_analytic_integral():
    S, sigma = 6, 0.3
    w = compositing_weights(alpha_from_density(torch.full((2, S), sigma)))
    heat = torch.full((2, S, 25), 0.8)
    rendered = composite(heat, w)
    expected = 0.8 * (1 - math.exp(-S * sigma))  # sum_i (1-e^-s) e^{-i s} = 1 - e^{-S s}
    torch.testing.assert_close(rendered, torch.full((2, 25), expected), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(accumulation(w), torch.full((2,), 1 - math.exp(-S * sigma)), rtol=1e-5, atol=1e-6)


def test_opaque_surface_renders_its_own_value():
    sigma = torch.tensor([[0.0, 0.0, 50.0, 50.0, 0.0]])
    values = torch.tensor([[[1.0], [2.0], [3.0], [4.0], [5.0]]])
    w = compositing_weights(alpha_from_density(sigma))
    assert abs(float(composite(values, w)) - 3.0) < 1e-6
    assert abs(float(accumulation(w)) - 1.0) < 1e-6
    # weights never sum above one
    rnd = compositing_weights(alpha_from_density(torch.rand(100, 8) * 5))
    assert float(accumulation(rnd).max()) <= 1.0 + 1e-6


def _camera():
    R, T = look_at(np.array([3.0, 0.5, 1.0]), np.array([0.0, 0.0, 0.9]))
    w2c = torch.eye(4)
    w2c[:3, :3] = torch.tensor(R, dtype=torch.float32)
    w2c[:3, 3] = torch.tensor(T, dtype=torch.float32)
    K = torch.tensor([[80.0, 0, 32], [0, 80.0, 32], [0, 0, 1]])
    return K, w2c


def test_project_inverts_backproject():
    K, w2c = _camera()
    uv = torch.rand(50, 2) * 63
    d = 2 + torch.rand(50) * 2
    pts = backproject(uv, d, K, w2c)
    uv2, z = project(pts, K[None], w2c[None])
    torch.testing.assert_close(uv2[0], uv, atol=1e-3, rtol=0)
    torch.testing.assert_close(z[0], d, atol=1e-4, rtol=0)


def test_ray_depth_grids_are_the_projections_of_the_back_projected_points():
    """The folded map against numpy in float64: world points z K^-1 [u, v, 1] of the target, projected by each
    source camera and scaled to grid_sample's [-1, 1] (corners aligned); a camera that faces away gets `outside`."""
    K, w2c = _camera()
    H, W = 48, 80  # the sources' image size, not the target's
    cams = []
    for eye, at in (([2.0, 0.5, 1.0], [0.0, 0.0, 0.0]), ([-1.5, 1.8, 0.5], [0.0, 0.0, 0.0]),
                    ([6.0, 0.0, 1.0], [9.0, 0.0, 1.0])):  # the last looks away from the scene
        R, T = look_at(np.array(eye), np.array(at))
        cams.append(np.vstack([np.hstack([R, T[:, None]]), [0, 0, 0, 1]]))
    src_w2c = torch.tensor(np.stack(cams), dtype=torch.float32)
    src_K = torch.tensor([[60.0, 0, 39.5], [0, 55.0, 23.5], [0, 0, 1]]).expand(3, 3, 3)
    uv = torch.rand(40, 2) * 63
    depths = torch.linspace(2.0, 4.0, 5)
    got = ray_depth_grids(uv, depths, K, w2c, src_K, src_w2c, (H, W), outside=-7.0).numpy()
    assert got.shape == (3, 40 * 5, 1, 2)
    Kd, Md = K.double().numpy(), w2c.double().numpy()
    rays = np.linalg.inv(Kd) @ np.vstack([uv.double().numpy().T, np.ones(40)])  # (3, R)
    cam = rays[:, :, None] * depths.double().numpy()[None, None]  # (3, R, S)
    world = np.einsum("ji,jrs->irs", Md[:3, :3], cam - Md[:3, 3, None, None])
    for v in range(3):
        x = np.einsum("ij,jrs->irs", src_w2c[v, :3, :3].double().numpy(), world) + src_w2c[v, :3, 3, None, None].double().numpy()
        pix = np.einsum("ij,jrs->irs", src_K[v].double().numpy(), x)
        grid = np.stack([pix[0] / pix[2] / (W - 1) * 2 - 1, pix[1] / pix[2] / (H - 1) * 2 - 1], -1).reshape(-1, 2)
        front = (x[2] > 0).reshape(-1)
        assert front.all() if v < 2 else not front.any()
        np.testing.assert_allclose(got[v, front, 0], grid[front], atol=2e-5)
        assert np.all(got[v, ~front, 0] == -7.0)


def test_depth_guided_samples_stay_inside_the_predicted_range():
    K, w2c = _camera()
    h = w = 16
    gen = torch.Generator().manual_seed(0)
    for inverse in (True, False):
        planes = plane_values(torch.full((h, w), 2.0), torch.full((h, w), 4.0), 8, inverse)
        first, last = planes[0], planes[-1]
        lo, hi = torch.minimum(first, last), torch.maximum(first, last)
        mean = lo + (hi - lo) * torch.rand(h, w, generator=gen)
        std = (hi - lo) * 0.2 * torch.rand(h, w, generator=gen)
        est = DepthEstimate(mean, std, first, last, inverse)
        uv = torch.rand(200, 2, generator=gen) * 63  # render resolution 64 x 64
        s = depth_guided_samples(uv, (64, 64), K, w2c, est, samples=4)
        # every sample inside the level's planes, sorted from near to far along the ray
        assert s.depths.shape == (200, 4)
        assert torch.all(s.depths >= 2.0 - 1e-5) and torch.all(s.depths <= 4.0 + 1e-5)
        assert torch.all(s.depths[:, 1:] - s.depths[:, :-1] >= -1e-6)
        # at grid pixels the interval is mean -/+ std clamped to the planes (hand-computed; ENeRF build_rays)
        px = torch.tensor([[0.0, 0.0], [63.0, 63.0], [21.0, 42.0]])  # 21 / 63 * 15 = 5, 42 / 63 * 15 = 10
        s2 = depth_guided_samples(px, (64, 64), K, w2c, est, samples=4)
        for r, (x, y) in enumerate([(0, 0), (15, 15), (5, 10)]):
            a, b = float(mean[y, x] - std[y, x]), float(mean[y, x] + std[y, x])
            a, b = max(a, float(lo[y, x])), min(b, float(hi[y, x]))
            near, far = (1 / b, 1 / a) if inverse else (a, b)
            assert s2.depths[r, 0] == pytest.approx(near, abs=1e-4)
            assert s2.depths[r, -1] == pytest.approx(far, abs=1e-4)
            # the volume coordinate measures from plane 0 (the near plane) to the last one
            d = (s2.values[r] - first[y, x]) / (last[y, x] - first[y, x])
            torch.testing.assert_close(s2.volume_coords[r, :, 2], d, atol=1e-5, rtol=0)
        assert torch.all(s.volume_coords >= -1e-5) and torch.all(s.volume_coords <= 1 + 1e-5)
        space = (lambda d: 1 / d) if inverse else (lambda d: d)
        torch.testing.assert_close(s.volume_coords[..., 2], (space(s.depths) - space(2.0)) / (space(4.0) - space(2.0)),
                                   atol=1e-5, rtol=0)
        # the sample points are at the sample depths in camera z
        _, z = project(s.points.reshape(-1, 3), K[None], w2c[None])
        torch.testing.assert_close(z[0], s.depths.reshape(-1), atol=1e-4, rtol=0)


def test_depth_regression_on_a_peaked_distribution():
    planes = plane_values(torch.full((4, 4), 2.0), torch.full((4, 4), 4.0), 9, inverse=False)
    logits = torch.full((9, 4, 4), -30.0)
    logits[4] = 30.0  # all mass on plane 4 (depth 3.0)
    est = depth_regression(logits, planes, inverse=False)
    torch.testing.assert_close(est.mean, torch.full((4, 4), 3.0))
    assert float(est.std.max()) < 1e-3
    torch.testing.assert_close(est.first, planes[0])
    torch.testing.assert_close(est.last, planes[-1])


@pytest.mark.parametrize("views", [2, 3, 4])
def test_weighted_sum_is_the_weighted_sum_over_the_middle_axis(views):
    from ghnerf.student.renderers import weighted_sum

    x, w = torch.randn(50, views, 7, dtype=torch.float64), torch.rand(50, views, 1, dtype=torch.float64)
    expected = np.einsum("nvc,nv->nc", x.numpy(), w[..., 0].numpy())
    np.testing.assert_allclose(weighted_sum(x, w).numpy(), expected, rtol=1e-12, atol=1e-12)
    x_before = x.clone()
    weighted_sum(x, w)
    assert torch.equal(x, x_before)  # the inputs are left as they were (the sum accumulates in its own tensor)
