"""The heatmap volume (ghnerf.eval.volumetric): a frame's views added one by one give the mean of their
occupancy-weighted heatmaps on a grid around the body, and its joints are that volume's peaks."""

import numpy as np
import pytest
import torch

from ghnerf.eval.metrics import volume_peaks
from ghnerf.eval.volumetric import BOX_MARGIN_M, VOXEL_M, HeatmapVolume, joints_error
from ghnerf.student.config import preset
from ghnerf.student.data import ExampleSet
from ghnerf.student.model import GHNeRF


def test_a_frames_volume_is_the_mean_of_its_views_occupancy_weighted_heatmaps(student_root):
    examples = ExampleSet(student_root, "test", 3, 0.5)
    first, second = examples.example(0), examples.example(1)
    assert first.key[:2] == second.key[:2]  # two views of one frame
    torch.manual_seed(0)
    model = GHNeRF(preset("ghnerf-resnet18", pretrained="none")).eval()
    cpu = torch.device("cpu")
    volume = HeatmapVolume(model, first.bounds, cpu)
    with pytest.raises(ValueError, match="no view"):
        volume.joints()
    with torch.no_grad():
        encoding = model.encode(first.batch)
    volume.add(first.batch, encoding)
    volume.add(second.batch)  # encodes its own sources
    # the grid: the body box with the margin, VOXEL_M apart, x slowest
    lo, hi = first.bounds[0] - BOX_MARGIN_M, first.bounds[1] + BOX_MARGIN_M
    counts = [len(np.arange(a, b + 1e-9, VOXEL_M)) for a, b in zip(lo, hi)]
    assert volume.shape == tuple(counts) and len(volume.points) == np.prod(counts)
    np.testing.assert_allclose(volume.points[1].numpy(), lo + [0, 0, VOXEL_M], atol=1e-6)
    want = 0
    for ex in (first, second):
        occ, heat = model.query_points(ex.batch, volume.points)
        want = want + occ[:, None] * heat
    want = (want / 2).T.reshape(model.cfg.num_joints, *counts).numpy()
    assert want.max() > 0
    np.testing.assert_allclose(volume.joints(), volume_peaks(want, lo, VOXEL_M), rtol=0, atol=1e-6)
    truth = first.joints3d.numpy()
    error = joints_error(volume.joints(), truth)
    joints = volume.joints()[:, :3]
    present = np.isfinite(truth).all(1) & np.isfinite(joints).all(1)  # joints either side lacks do not count
    assert 0 < present.sum() and error == pytest.approx(
        float(np.linalg.norm(joints[present] - truth[present], axis=1).mean()))
    assert joints_error(None, truth) is None
