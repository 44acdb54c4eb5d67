"""The frozen pose-network encoder (ghnerf-mediapipe): MediaPipe's heatmaps of the source photographs."""

import numpy as np
import pytest
import torch

from ghnerf.base.errors import ConfigError
from ghnerf.student.config import preset
from ghnerf.student.data import ExampleSet
from ghnerf.student.encoders import PoseNetworkEncoder
from ghnerf.student.model import GHNeRF
from teachers.base import TeacherInput

pytest.importorskip("mediapipe", reason="mediapipe==0.10.14 is a core dependency; `make install` installs it")


@pytest.fixture(scope="module")
def example(student_root):
    return ExampleSet(student_root, "train", image_scale=1.0).example(0)


def test_features_are_the_teachers_heatmaps_of_the_unmasked_photographs(example, monkeypatch):
    enc = PoseNetworkEncoder("bundled").eval()
    photos = example.batch.src_images_unmasked
    feats = enc(photos)
    H, W = photos.shape[-2:]
    assert feats.shape == (3, 25, H // 2, W // 2) and not any(p.requires_grad for p in enc.parameters())
    # independently: the teacher on the same uint8 image, resized the same way
    img = np.ascontiguousarray((photos[1].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    direct = torch.from_numpy(enc.teacher.predict([TeacherInput("v", img, None)])[0].heatmaps)
    expected = torch.nn.functional.interpolate(direct[None], size=(H // 2, W // 2), mode="bilinear",
                                               align_corners=False)[0]
    torch.testing.assert_close(feats[1], expected, atol=1e-6, rtol=0)
    assert float(feats[1].amax()) > 0.5  # the person was found
    # the model hands this encoder the photographs, not the background-zeroed sources
    model = GHNeRF(preset("ghnerf-mediapipe")).eval()
    seen = []
    monkeypatch.setattr(model.encoder, "forward",
                        lambda x, photos: seen.append(x) or torch.zeros(3, 25, H // 2, W // 2))
    model.encode(example.batch)
    assert seen[0] is example.batch.src_images_unmasked
    assert not torch.equal(example.batch.src_images_unmasked, example.batch.src_images)


def test_training_mode_caches_and_eval_mode_always_runs_the_network(example, monkeypatch):
    enc = PoseNetworkEncoder("bundled")
    calls = []
    real = enc.teacher.predict
    monkeypatch.setattr(enc.teacher, "predict", lambda batch: calls.append(1) or real(batch))
    photos = example.batch.src_images_unmasked
    enc.train()
    first = enc(photos)
    again = enc(photos)
    assert len(calls) == 3 and torch.equal(first, again)  # the cached keypoints drawn again: the same maps
    enc.eval()
    assert torch.equal(enc(photos), first)  # and the network's own
    assert len(calls) == 6


def test_a_later_run_reads_the_keypoints_from_disk_not_the_network(example, monkeypatch, tmp_path):
    """Another encoder (another training run, another process) on the same photographs finds their keypoints in the
    on-disk cache: the network does not run, and the maps are the network's. A changed pixel is a new image."""
    monkeypatch.setenv("GHNERF_CACHE_DIR", str(tmp_path / "cache"))
    photos = example.batch.src_images_unmasked
    first = PoseNetworkEncoder("bundled").train()
    maps = first(photos)
    files = list((tmp_path / "cache").glob("keypoints-*.sqlite"))
    assert len(files) == 1 and first.teacher.weights_digest[:16] in files[0].name
    later = PoseNetworkEncoder("bundled").train()
    calls = []
    real = later.teacher.predict
    monkeypatch.setattr(later.teacher, "predict", lambda batch: calls.append(1) or real(batch))
    assert torch.equal(later(photos), maps) and calls == []
    assert torch.equal(later.eval()(photos), maps) and len(calls) == 3  # eval: the network, the same maps
    changed = photos.clone()
    changed[0, :, 0, 0] = 1 - changed[0, :, 0, 0]
    later.train()(changed)
    assert len(calls) == 4  # only the changed view ran


def test_a_random_init_of_a_frozen_network_is_refused():
    with pytest.raises(ConfigError, match="bundled"):
        PoseNetworkEncoder("none")


def test_a_batch_without_the_photographs_is_refused(example):
    from dataclasses import replace

    model = GHNeRF(preset("ghnerf-mediapipe")).eval()
    with pytest.raises(ValueError, match="unmasked source photographs"):
        model.encode(replace(example.batch, src_images_unmasked=None))


def test_training_after_the_distillation_finds_the_teachers_keypoints(student_root, monkeypatch, tmp_path):
    """The distillation's MediaPipe runs record every photograph's keypoints in the same cache, so the first training
    run over the distilled frames does not run the network on them, at the teacher's resolution and at another
    image scale alike (the network reads the photographs as stored, its keypoints scaled to the images); the maps
    are the network's."""
    from ghnerf.app.distill import DistillConfig, distill

    monkeypatch.setenv("GHNERF_CACHE_DIR", str(tmp_path / "cache"))
    subject = ExampleSet(student_root, "train", image_scale=1.0).items[0][0]
    distill(student_root, tmp_path / "targets", DistillConfig(teacher="mediapipe", subjects=[subject]))
    example = ExampleSet(student_root, "train", image_scale=1.0).example(0)
    assert ExampleSet(student_root, "train", image_scale=1.0).items[0][0] == subject
    assert example.batch.src_photos is None  # at scale 1 the images are the photographs
    enc = PoseNetworkEncoder("bundled").train()
    calls = []
    real = enc.teacher.predict
    monkeypatch.setattr(enc.teacher, "predict", lambda batch: calls.append(1) or real(batch))
    photos = example.batch.src_images_unmasked
    maps, keypoints = enc.heatmaps_and_keypoints(photos)
    assert calls == []  # every source photograph was found
    assert torch.equal(enc.eval()(photos), maps) and len(calls) == 3  # the network's own maps

    half = ExampleSet(student_root, "train", image_scale=0.5).example(0).batch
    assert half.src_photos.scale == 0.5 and len(half.src_photos.images) == 3
    assert all(p.dtype == np.uint8 and p.shape[:2] == photos.shape[-2:] for p in half.src_photos.images)
    H, W = half.src_images_unmasked.shape[-2:]
    for mode in ("train", "eval"):  # the cache while training, the network in eval mode: the same keypoints
        before = len(calls)
        enc.train(mode == "train")
        half_maps, half_keypoints = enc.heatmaps_and_keypoints(half.src_images_unmasked, half.src_photos)
        assert len(calls) - before == (0 if mode == "train" else 3)
        expected = keypoints.copy()
        expected[:, :, :2] *= 0.5
        np.testing.assert_array_equal(half_keypoints, expected)
        assert half_maps.shape == (3, 25, H // 2, W // 2)
        # independently: the teacher's own drawing of the scaled keypoints at the scaled size
        drawn = torch.from_numpy(enc.teacher.codec.encode(np.nan_to_num(expected[1]), H, W,
                                                          amplitude=expected[1, :, 2])[0])
        torch.testing.assert_close(half_maps[1], torch.nn.functional.interpolate(
            drawn[None], size=(H // 2, W // 2), mode="bilinear", align_corners=False)[0], atol=1e-6, rtol=0)
    # without the photographs the network runs on the scaled images themselves: other pixels
    enc.train()
    before = len(calls)
    enc(half.src_images_unmasked)
    assert len(calls) - before == 3


def test_the_model_hands_the_pose_network_the_photographs_before_scaling(student_root, monkeypatch):
    model = GHNeRF(preset("ghnerf-mediapipe-hypotheses")).eval()
    batch = ExampleSet(student_root, "train", image_scale=0.5).example(0).batch
    seen = []
    real = model.encoder.heatmaps_and_keypoints
    monkeypatch.setattr(model.encoder, "heatmaps_and_keypoints",
                        lambda images, photos: seen.append((images, photos)) or real(images, photos))
    model.encode(batch)
    assert seen[0][0] is batch.src_images_unmasked and seen[0][1] is batch.src_photos


def test_photographs_that_do_not_match_the_images_are_refused(example):
    from ghnerf.student.model_io import SourcePhotos

    enc = PoseNetworkEncoder("bundled")
    images = example.batch.src_images_unmasked
    one = SourcePhotos((np.zeros((8, 8, 3), np.uint8),), 0.5)
    with pytest.raises(ValueError, match="1 source photographs for 3 source images"):
        enc(images, one)
