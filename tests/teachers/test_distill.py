"""The distill pipeline: targets, reruns, changed inputs, bad views, lineage, serving to training."""

import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from ghnerf.app.cli import app
from ghnerf.base.keypoint_codec import HeatmapCodec
from ghnerf.data import load_view, open_dataset
from storage.catalog import Catalog
from storage.lineage import resolve
from storage.root import StorageRoot
from storage.shards import decode_rows, read_shard
from storage.targets import TargetDataset, TargetStore
from teachers.base import TeacherInput, TeacherOutput
from ghnerf.app.distill import DistillConfig, distill, plan_shards, run_shard
from teachers.gt_joints import GTJointsTeacher

runner = CliRunner()


@pytest.fixture
def zju_copy(zju_root, tmp_path):
    shutil.copytree(zju_root, tmp_path / "data")
    return tmp_path / "data"


def test_gt_joints_heatmaps_peak_at_the_joints(zju_root):
    frame = open_dataset(zju_root).sequence("CoreView_902").frame(1)
    teacher = GTJointsTeacher(HeatmapCodec(stride=1, sigma=4.0))
    for v in frame.views[:3]:
        vi = load_view(v)
        out = teacher.predict([TeacherInput("k", np.uint8(vi.image * 255), vi.camera, joints2d=v.joints2d)])[0]
        present = v.joints2d[:, 2] > 0
        for j in np.flatnonzero(present):
            iy, ix = np.unravel_index(out.heatmaps[j].argmax(), out.heatmaps[j].shape)
            assert np.hypot(ix - v.joints2d[j, 0], iy - v.joints2d[j, 1]) <= 1.0
        assert np.all(out.heatmaps[~present] == 0) and np.all(out.missing == ~present)


def test_distill_writes_verified_shards_and_reruns_skip(zju_copy, tmp_path):
    store = tmp_path / "store"
    cfg = DistillConfig(teacher="gt-joints", frames_per_shard=2)
    rep = distill(zju_copy, store, cfg)
    assert rep.counts() == {"written": 4}  # 2 subjects x ceil(3 / 2)
    root = StorageRoot(store)
    entries = Catalog(root).current()
    assert sum(e.rows for e in entries) == 2 * 3 * 6 * 2  # subjects x frames x cameras x (heatmap, keypoints)
    for e in entries:
        read_shard(root, e.shard_path, e.shard_sha256)  # verifies sha256
        assert e.teacher == "gt-joints" and e.weights_sha256 == "none" and len(e.config_hash) == 16
        assert any(i["path"].endswith("annots.npy") for i in e.inputs)
        assert all(len(i["sha256"]) == 64 for i in e.inputs)
    again = distill(zju_copy, store, cfg)
    assert again.counts() == {"skipped": 4}
    assert len(Catalog(root).entries()) == 4
    # a changed input recomputes exactly its shard
    view = open_dataset(zju_copy).sequence("CoreView_902").frame(2).views[0]
    img = load_view(view, undistort=False).image
    from ghnerf.base.fileio import write_image
    write_image(view.image_path, np.uint8(np.clip(img * 255 * 0.9, 0, 255)))
    changed = distill(zju_copy, store, cfg)
    assert changed.counts() == {"skipped": 3, "written": 1}
    assert [r.subject for r in changed.results if r.status == "written"] == ["CoreView_902"]
    assert len(Catalog(root).current()) == 4  # the new shard supersedes the old one
    # a changed config recomputes everything
    assert distill(zju_copy, store, DistillConfig(teacher="gt-joints", frames_per_shard=2, sigma=5.0)).counts() == \
        {"written": 4}


class NaNTeacher(GTJointsTeacher):
    """gt-joints that emits NaN for one camera."""

    name = "nan-teacher"

    def predict(self, batch):
        out = super().predict(batch)
        bad = out[1]
        hm = bad.heatmaps.copy()
        hm[0, 0, 0] = np.nan
        out[1] = TeacherOutput(heatmaps=hm, keypoints=bad.keypoints, missing=bad.missing, stride=bad.stride)
        return out


def test_nan_output_and_corrupt_image_fail_only_their_views(zju_copy, tmp_path):
    store = StorageRoot(tmp_path / "store")
    cfg = DistillConfig(teacher="gt-joints", frames_per_shard=3)
    teacher = NaNTeacher(HeatmapCodec())
    seq = open_dataset(zju_copy).sequence("CoreView_902")
    seq.frame(0).views[3].image_path.write_bytes(b"garbage")
    plan = [p for p in plan_shards(zju_copy, cfg, teacher) if p.subject == "CoreView_902"][0]
    res = run_shard(plan, cfg, teacher, store)
    assert res.status == "partial"
    keys = {f["key"]: f["error"] for f in res.failures}
    for fid in (0, 1, 2):
        assert "NaN" in keys[f"CoreView_902/{fid}/Camera_B2"]
    assert "not a readable image" in keys["CoreView_902/0/Camera_B4"]
    assert len(res.failures) == 4
    assert res.rows == (3 * 6 - 4) * 2
    rows = decode_rows(read_shard(store, res.shard_path, Catalog(store).find(plan.key)[0].shard_sha256))
    assert not any(r.camera == "Camera_B2" for r in rows)
    assert all(np.isfinite(r.array).all() for r in rows if r.kind == "heatmap")


def test_lineage_from_target_to_inputs_and_weights(zju_root, tmp_path):
    store = tmp_path / "store"
    distill(zju_root, store, DistillConfig(teacher="gt-joints", frames_per_shard=3))
    ts = TargetStore(store, "gt-joints")
    target = ts.get("CoreView_901", 2, "Camera (3)", "heatmap")
    info = resolve(str(store), target.target_id)
    assert info["kind"] == "target" and info["target"]["camera"] == "Camera (3)"
    image = open_dataset(zju_root).sequence("CoreView_901").frame(1).views[2].image_path
    from ghnerf.base.fileio import file_sha256
    assert info["target"]["image_sha256"] == file_sha256(image)
    assert {"path": str(image.relative_to(zju_root)), "sha256": file_sha256(image)} in info["inputs"]
    assert info["teacher"]["name"] == "gt-joints" and info["teacher"]["weights_sha256"] == "none"
    result = runner.invoke(app, ["lineage", target.target_id, "--store", str(store)])
    assert result.exit_code == 0 and "gt-joints" in result.output and "annots.npy" in result.output
    shard_info = resolve(str(store), info["shard"]["path"])
    assert shard_info["shard"]["sha256"] == info["shard"]["sha256"]
    result = runner.invoke(app, ["lineage", "nope", "--store", str(store)])
    assert result.exit_code == 2


def test_target_dataset_serves_aligned_targets(zju_root, tmp_path):
    store = tmp_path / "store"
    distill(zju_root, store, DistillConfig(teacher="gt-joints", frames_per_shard=2, stride=2))
    ds = TargetDataset(TargetStore(store, "gt-joints"), "heatmap")
    assert len(ds) == 2 * 3 * 6
    reader = open_dataset(zju_root)
    codec = HeatmapCodec(stride=2)
    for i in (0, 7, len(ds) - 1):
        item = ds[i]
        seq = reader.sequence(item["subject"])
        frame = next(seq.frame(k) for k in range(seq.num_frames) if seq.frame(k).frame_id == item["frame_id"])
        view = frame.view(item["camera"])
        dec = codec.decode(item["target"].numpy())
        present = view.joints2d[:, 2] > 0
        assert np.abs(dec[present, :2] - view.joints2d[present, :2]).max() < 0.01
        assert item["target"].shape == (25, 64, 64)


def test_surface_cse_targets(rp_root, tmp_path):
    store = tmp_path / "store"
    rep = distill(rp_root, store, DistillConfig(teacher="surface-cse", frames_per_shard=3))
    assert set(rep.counts()) == {"written"}
    ts = TargetStore(store, "surface-cse")
    assert ts.kinds() == {"cse"}
    subject = open_dataset(rp_root).subjects()[0]
    view = open_dataset(rp_root).sequence(subject).frame(0).views[0]
    t = ts.get(subject, 0, view.name, "cse")
    mask = load_view(view).mask[::2, ::2]
    assert t.array.shape == (16, 56, 56) and (t.mask == mask).mean() > 0.97
    norms = np.linalg.norm(t.array[:, t.mask], axis=0)
    np.testing.assert_allclose(norms, 1.0, atol=2e-3)
    assert np.all(t.array[:, ~t.mask] == 0)


def test_cli_distill_and_teachers_list(zju_root, tmp_path):
    result = runner.invoke(app, ["teachers", "list"])
    assert result.exit_code == 0
    for name in ("gt-joints", "mediapipe", "surface-cse", "openpifpaf", "densepose-cse"):
        assert name in result.output
    preview = tmp_path / "preview.png"
    result = runner.invoke(app, ["distill", "--dataset", str(zju_root), "--teacher", "gt-joints", "--out",
                                 str(tmp_path / "store"), "--frames-per-shard", "3", "--preview", str(preview)])
    assert result.exit_code == 0, result.output
    assert "written" in result.output and preview.is_file()
    result = runner.invoke(app, ["distill", "--dataset", str(zju_root), "--teacher", "nope", "--out",
                                 str(tmp_path / "store")])
    assert result.exit_code == 2 and "unknown teacher" in result.output


def test_target_dataset_collates(zju_root, tmp_path):
    from torch.utils.data import DataLoader

    store = tmp_path / "store"
    distill(zju_root, store, DistillConfig(teacher="gt-joints", frames_per_shard=3))
    batch = next(iter(DataLoader(TargetDataset(TargetStore(store, "gt-joints"), "heatmap"), batch_size=8)))
    assert batch["target"].shape == (8, 25, 64, 64) and batch["joint_missing"].shape == (8, 25)
    # the first 8 views in (subject, frame, camera) order, across a frame boundary, each with its own heatmaps
    reader, views = open_dataset(zju_root), {}
    for subject in reader.subjects():
        seq = reader.sequence(subject)
        for fr in map(seq.frame, range(seq.num_frames)):
            views.update({(subject, fr.frame_id, v.name): v for v in fr.views})
    first = sorted(views)[:8]
    assert list(zip(batch["subject"], batch["frame_id"].tolist(), batch["camera"])) == first
    assert len({f for _, f, _ in first}) == 2
    codec = HeatmapCodec(stride=2, sigma=7.0)  # DistillConfig's defaults
    for i, key in enumerate(first):
        expected, missing = codec.encode(views[key].joints2d, 128, 128)
        np.testing.assert_allclose(batch["target"][i].numpy(), expected, atol=1 / 65535 + 1e-6)  # uint16 storage
        assert np.array_equal(batch["joint_missing"][i].numpy(), missing) and batch["stride"][i] == 2
