"""Readers: round trip from the generator, geometry, masks, source views, splits."""

import json

import numpy as np
import pytest
from scipy import ndimage
from typer.testing import CliRunner

from ghnerf.app.cli import app
from ghnerf.base.cameras import Camera, look_at
from ghnerf.data import (
    bound_mask,
    load_depth,
    load_mask,
    load_view,
    make_split,
    near_far,
    nearest_source_views,
    open_dataset,
)
from ghnerf.data.splits import SplitConfig
from ghnerf.synth.generate import SynthConfig, build_subject

runner = CliRunner()


@pytest.mark.parametrize("fixture,layout,subjects,frames,cameras,size,seed", [
    ("zju_root", "zju", 2, 3, 6, 128, 3),
    ("zju_plain_root", "zju", 1, 2, 4, 96, 5),
    ("rp_root", "renderpeople", 2, 3, 5, 112, 7),
])
def test_round_trip_synth_inspect_reader(request, fixture, layout, subjects, frames, cameras, size, seed):
    root = request.getfixturevalue(fixture)
    result = runner.invoke(app, ["data", "inspect", str(root), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["layout"] == layout
    assert len(summary["subjects"]) == subjects
    for s in summary["subjects"]:
        assert (s["cameras"], s["frames"], s["image_size"]) == (cameras, frames, [size, size])
    # the reader gives back the generated cameras (T converted to metres)
    reader = open_dataset(root)
    cfg = SynthConfig(layout=layout, subjects=subjects, frames=frames, cameras=cameras, size=size, seed=seed,
                      distortion=False if fixture == "zju_plain_root" else None,
                      zju_naming="b" if fixture == "zju_plain_root" else "auto")
    for i, name in enumerate(reader.subjects()):
        rig = build_subject(cfg, i)
        seq = reader.sequence(name)
        frame = seq.frame(frames - 1)
        assert len(frame.views) == cameras
        for view, cam in zip(frame.views, rig.cameras):
            np.testing.assert_allclose(view.camera.K, cam.K, atol=1e-9)
            np.testing.assert_allclose(view.camera.R, cam.R, atol=1e-9)
            np.testing.assert_allclose(view.camera.T, cam.T, atol=1e-9)
            np.testing.assert_allclose(view.camera.D, cam.D, atol=1e-12)
            assert (view.camera.height, view.camera.width) == (size, size)
            assert view.image_path.is_file() and view.mask_paths


def test_single_subject_folder_is_a_dataset(zju_root, rp_root):
    for root in (zju_root, rp_root):
        sub = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))[0]
        reader = open_dataset(sub)
        assert reader.subjects() == [sub.name]


def test_zju_frame_ids_follow_both_namings(zju_root):
    reader = open_dataset(zju_root)
    paren = reader.sequence("CoreView_901").frame(0)
    b = reader.sequence("CoreView_902").frame(0)
    assert paren.views[0].name == "Camera (1)" and paren.frame_id == 1  # 1-based, as CoreView_313
    assert b.views[0].name == "Camera_B1" and b.frame_id == 0
    assert paren.vertices_path.name == "1.npy" and b.vertices_path.name == "0.npy"
    assert paren.vertices_path.parent.name == "new_vertices"


def test_every_mask_pixel_has_depth_inside_near_far(any_root):
    reader = open_dataset(any_root)
    for name in reader.subjects():
        frame = reader.sequence(name).frame(1)
        for view in frame.views:
            mask = load_mask(view)
            depth = load_depth(view)
            near, far = near_far(frame, view.camera)
            assert mask.sum() > 200
            d = depth[mask]
            assert np.all(np.isfinite(d)), f"{view.image_path}: mask pixel without depth"
            assert d.min() >= near and d.max() <= far
            # and the projected body box covers the mask
            assert bound_mask(frame, view.camera)[mask].all()


def test_mask_is_union_and_dilation_grows_it(zju_plain_root):
    view = open_dataset(zju_plain_root).sequence("CoreView_901").frame(0).views[0]
    assert {p.parent.parent.name for p in view.mask_paths} == {"mask", "mask_cihp"}
    plain = load_mask(view)
    dilated = load_mask(view, dilate=5)
    assert dilated[plain].all() and dilated.sum() > plain.sum()
    vi = load_view(view)
    assert vi.image.dtype == np.float32 and vi.image.shape == (96, 96, 3)
    assert 0 <= vi.image.min() and vi.image.max() <= 1


def test_undistorted_mask_matches_a_pinhole_render(tmp_path):
    """Undistorting the raw mask gives (up to resampling) what an ideal pinhole camera would have rendered."""
    from ghnerf.synth.body import SurfaceSampling, pose_body
    from ghnerf.synth.generate import generate_dataset
    from ghnerf.synth.motion import pose_at
    from ghnerf.synth.render import render_view

    cfg = SynthConfig(layout="zju", subjects=1, frames=1, cameras=4, size=256, seed=2, zju_naming="b")
    generate_dataset(cfg, tmp_path)
    rig = build_subject(cfg, 0)
    posed = pose_body(rig.body, pose_at(rig.style, 0))
    verts = SurfaceSampling().posed_vertices(posed)
    frame = open_dataset(tmp_path).sequence("CoreView_901").frame(0)

    def off_by_more_than_one_pixel(mask, truth):
        grown = ndimage.binary_dilation(truth, np.ones((3, 3)))
        shrunk = ndimage.binary_erosion(truth, np.ones((3, 3)))
        return int((mask & ~grown).sum() + (~mask & shrunk).sum())

    bad_undist = bad_raw = 0
    for view, cam in zip(frame.views, rig.cameras):
        ideal = Camera(cam.K, cam.R, cam.T, np.zeros(5), cam.height, cam.width)
        truth = render_view(posed, rig.appearance, ideal, ideal.pixel_rays(), np.zeros((256, 256, 3)), verts).mask
        bad_undist += off_by_more_than_one_pixel(load_mask(view, undistort=True), truth)
        bad_raw += off_by_more_than_one_pixel(load_mask(view, undistort=False), truth)
    assert bad_undist <= 5
    assert bad_raw > 20  # the raw mask is off by 2-4 px at the body extremities


def test_nearest_source_views_on_a_ring():
    cams = []
    for k in range(8):
        az = 2 * np.pi * k / 8
        R, T = look_at(np.array([3 * np.cos(az), 3 * np.sin(az), 1.0]), np.array([0, 0, 1.0]))
        cams.append(Camera(np.eye(3), R, T))
    assert nearest_source_views(cams, 0, range(8), 2) in ([1, 7], [7, 1])
    assert sorted(nearest_source_views(cams, 3, [0, 2, 4, 6], 2)) == [2, 4]
    assert 3 not in nearest_source_views(cams, 3, range(8), 4)
    from ghnerf.base.errors import ConfigError
    with pytest.raises(ConfigError):
        nearest_source_views(cams, 0, [0, 1], 2)


def test_splits():
    zju_names = ["CoreView_313", "CoreView_315", "CoreView_377", "CoreView_386", "CoreView_387", "CoreView_390",
                 "CoreView_392", "CoreView_393", "CoreView_394"]
    s = make_split(zju_names, num_frames=1470, num_cameras=21)
    assert s.test_subjects == ("CoreView_313", "CoreView_386")
    assert set(s.train_subjects) == {"CoreView_315", "CoreView_377", "CoreView_387", "CoreView_390", "CoreView_393",
                                     "CoreView_394"}
    assert "CoreView_392" not in s.train_subjects + s.test_subjects
    assert s.frames == range(600)
    assert len(s.train_cameras) == 11 and len(s.test_cameras) == 10
    assert not set(s.train_cameras) & set(s.test_cameras)
    names = [f"seq_{i:06d}" for i in range(50)]
    a = make_split(names, 10, 8, SplitConfig(seed=1))
    b = make_split(names, 10, 8, SplitConfig(seed=1))
    assert a == b and len(a.test_subjects) == 6 and not set(a.test_subjects) & set(a.train_subjects)


def test_split_without_test_subjects_holds_out_cameras():
    """One subject (any name, a ZJU test subject too) or only training subjects: the test split is the test cameras
    of the training subjects, recorded as such; a split with test subjects is unchanged."""
    for names in (["seq_000000"], ["CoreView_313"]):
        s = make_split(names, num_frames=5, num_cameras=6)
        assert (s.train_subjects, s.test_subjects, s.held_out) == (tuple(names), tuple(names), "cameras")
        assert s.record()["test_cameras"] == [1, 3, 5] and s.record()["train_cameras"] == [0, 2, 4]
        assert s.notice("D").startswith("D: 1 subject, so the test split holds out cameras 1, 3, 5 of ")
    s = make_split(["CoreView_315", "CoreView_377"], num_frames=5, num_cameras=4)
    assert s.train_subjects == s.test_subjects == ("CoreView_315", "CoreView_377") and s.held_out == "cameras"
    s = make_split(["a", "b"], num_frames=5, num_cameras=4)
    assert len(s.test_subjects) == 1 and s.held_out == "subjects" and s.notice("D") is None


def test_source_view_count_goes_down_to_two():
    from ghnerf.data.views import source_view_count

    assert [source_view_count(3, n) for n in range(5)] == [None, None, 2, 3, 3]
    assert source_view_count(2, 1) is None and source_view_count(4, 3) == 3
