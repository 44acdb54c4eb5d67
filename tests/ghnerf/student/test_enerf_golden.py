"""Golden test: our ENeRF core against the original's own outputs.

``data/enerf_golden.npz`` was written once, outside this repository, by running the original
(zju3dv/ENeRF@5a084e9, ``lib/networks/enerf/network_human.Network`` with the settings of
``configs/enerf/zjumocap_eval.yaml`` over ``dtu_pretrain.yaml``: 2 levels, 32 / 8 planes, 8 / 2 samples,
disparity sampling at the coarse level) in eval mode on CPU, on a 96 x 128 scene (smooth random colour images,
four ring cameras with different intrinsics, near/far 2.0-4.2 m) with 2 and with 3 source views, and all pixels
of both levels rendered through the original's ``enerf_utils.build_rays`` (test split). Weights: the original's
own initialisation (``torch.manual_seed(0)``), BatchNorm statistics and affine parameters drawn from a seeded
generator (running mean N(0, 0.1), running var U(0.5, 1.5), weight U(0.5, 1.5), bias N(0, 0.1)), the depth
logits' last convolution scaled by 100 so that the depth distributions are peaked as a trained network's are
(coarse depth 2.0-4.2 m across the image), and every parameter rounded to float16 (stored so; exact in float32).
Keys: ``net/<original parameter name>``, ``case{2,3}/in/*`` (the original's batch: images in [-1, 1], w2c
``exts``, ``ixts``, near_far) and ``case{2,3}/out/*`` (``rgb_level{0,1}``, ``depth_level{0,1}`` as
softmax(weights) . z in each level's sampling space, ``depth_mvs_level{0,1}`` and ``std_level{0,1}``).
"""

from pathlib import Path

import numpy as np
import pytest
import torch

from ghnerf.base.errors import ConfigError
from ghnerf.student.config import preset
from ghnerf.student.enerf_weights import convert_enerf_state_dict, enerf_name
from ghnerf.student.model import GHNeRF
from ghnerf.student.model_io import MultiViewBatch

GOLDEN = Path(__file__).parent / "data" / "enerf_golden.npz"
TOL = 1e-4


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN, allow_pickle=False) as d:  # our own fixture; no pickled objects in it
        return {k: d[k] for k in d.files}


def _original_state(golden) -> dict:
    return {k[4:]: torch.from_numpy(v.astype(np.float32) if v.dtype == np.float16 else v)
            for k, v in golden.items() if k.startswith("net/")}


@pytest.fixture(scope="module")
def enerf(golden):
    model = GHNeRF(preset("enerf").with_enerf_settings()).eval()
    model.load_state_dict(convert_enerf_state_dict(_original_state(golden), set(model.state_dict())))
    return model


def _batch(golden, views: int) -> MultiViewBatch:
    def get(key):
        return torch.from_numpy(golden[f"case{views}/in/{key}"].astype(np.float32))

    return MultiViewBatch(src_images=get("src_inps") * 0.5 + 0.5, src_K=get("src_ixts"), src_w2c=get("src_exts"),
                          tgt_K=get("tar_ixt"), tgt_w2c=get("tar_ext"), near_far=get("near_far"))


@pytest.mark.parametrize("views", [2, 3])
def test_every_output_matches_the_original(golden, enerf, views):
    with torch.no_grad():
        levels = enerf(_batch(golden, views))
    for i, out in enumerate(levels):
        ref = {k: golden[f"case{views}/out/{k}_level{i}"] for k in ("rgb", "depth", "depth_mvs", "std")}
        h, w = out.render_size
        assert ref["rgb"].shape == (h, w, 3)
        np.testing.assert_allclose(out.rgb.view(h, w, 3).numpy(), ref["rgb"], atol=TOL, rtol=0)
        # ENeRF's rendered depth is in the level's sampling space: disparity at the coarse level
        depth = ref["depth"] if not enerf.cfg.levels[i].inverse_depth else 1.0 / ref["depth"]
        np.testing.assert_allclose(out.depth.view(h, w).numpy(), depth, atol=TOL, rtol=0)
        np.testing.assert_allclose(out.mvs_depth.numpy(), ref["depth_mvs"], atol=TOL, rtol=0)
    # the test is not vacuous: the scene has structure the network must reproduce
    assert golden[f"case{views}/out/depth_mvs_level0"].std() > 0.2  # metres across the image
    assert golden[f"case{views}/out/rgb_level1"].std() > 0.05


def test_chunked_and_masked_rendering_equal_one_call(golden, enerf):
    """Rays rendered in chunks (volumes built once) or only some pixels give what one full call gives."""
    batch = _batch(golden, 2)
    with torch.no_grad():
        full = enerf(batch)[-1]
        h, w = full.render_size
        pick = torch.nonzero(torch.rand(h, w, generator=torch.Generator().manual_seed(0)) < 0.2).flip(-1).float()
        part = enerf(batch, [pick.new_zeros((0, 2)), pick], chunk=97)[-1]
    idx = (pick[:, 1] * w + pick[:, 0]).long()
    torch.testing.assert_close(part.rgb, full.rgb[idx], atol=1e-6, rtol=0)
    torch.testing.assert_close(part.depth, full.depth[idx], atol=1e-6, rtol=0)


def test_ghnerf_settings_differ_from_enerf_only_where_documented():
    ours, theirs = preset("enerf"), preset("enerf").with_enerf_settings()
    assert (ours.levels[-1].samples_per_ray, theirs.levels[-1].samples_per_ray) == (4, 2)
    assert (ours.source_views, theirs.source_views) == (3, 2)
    assert (ours.depth_rendering, theirs.depth_rendering) == ("normalised", "softmax")
    assert (ours.losses.levels, theirs.losses.levels) == ((), (0.1, 1.0))  # () = 1 for every level
    assert ours.levels[0] == theirs.levels[0]


def test_state_dict_mapping_is_one_to_one_and_refuses_strangers(golden, enerf):
    original = _original_state(golden)
    ours = set(enerf.state_dict())
    assert len(original) == len(ours) == len({enerf_name(k) for k in original})
    with pytest.raises(ConfigError, match="not a parameter of ENeRF"):
        enerf_name("nerf_0.agg.unknown_fc.0.weight")
    incomplete = {k: v for k, v in original.items() if not k.startswith("nerf_1.")}
    with pytest.raises(ConfigError, match="missing"):
        convert_enerf_state_dict(incomplete, ours)
    prefixed = {f"module.{k}": v for k, v in original.items()}  # DataParallel checkpoints
    assert set(convert_enerf_state_dict(prefixed, ours)) == ours
