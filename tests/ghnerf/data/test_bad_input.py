"""Bad input gets DataReadError naming the file; the CLI prints one line and exits non-zero."""

import json
import shutil

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from ghnerf.app.cli import app
from ghnerf.data import load_view, open_dataset
from ghnerf.base.errors import DataReadError

runner = CliRunner()


@pytest.fixture
def zju_copy(zju_root, tmp_path):
    dst = tmp_path / "zju"
    shutil.copytree(zju_root / "CoreView_902", dst / "CoreView_902")
    return dst / "CoreView_902"


@pytest.fixture
def rp_copy(rp_root, tmp_path):
    name = sorted(p.name for p in rp_root.iterdir() if p.name.startswith("seq_"))[0]
    shutil.copytree(rp_root / name, tmp_path / name)
    return tmp_path / name


def _first_view(seq_dir, frame=0, cam=0):
    reader = open_dataset(seq_dir)
    return reader.sequence(reader.subjects()[0]).frame(frame).views[cam]


@pytest.mark.parametrize("copy", ["zju_copy", "rp_copy"])
def test_missing_image(request, copy):
    seq = request.getfixturevalue(copy)
    view = _first_view(seq, frame=1, cam=2)
    view.image_path.unlink()
    with pytest.raises(DataReadError, match="missing") as info:
        load_view(view)
    assert info.value.path == view.image_path


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_corrupt_image(zju_copy, damage):
    view = _first_view(zju_copy, frame=1, cam=1)
    data = view.image_path.read_bytes()
    view.image_path.write_bytes({"garbage": b"not a jpeg at all" * 100, "truncated": data[: len(data) // 2],
                                 "empty": b""}[damage])
    with pytest.raises(DataReadError, match="not a readable image") as info:
        load_view(view)
    assert str(view.image_path) in str(info.value)
    # the other views of the frame still load
    other = _first_view(zju_copy, frame=1, cam=2)
    assert load_view(other).mask.any()


def test_annots_camera_count_disagrees_with_folders(zju_copy):
    path = zju_copy / "annots.npy"
    annots = np.load(path, allow_pickle=True).item()
    for key in ("K", "R", "T", "D"):
        annots["cams"][key] = annots["cams"][key][:-1]
    for entry in annots["ims"]:
        entry["ims"] = entry["ims"][:-1]
        entry["kpts2d"] = entry["kpts2d"][:-1]
    np.save(path, np.array(annots, dtype=object), allow_pickle=True)
    with pytest.raises(DataReadError, match="camera folders") as info:
        open_dataset(zju_copy).sequence("CoreView_902")
    assert info.value.path == path


def test_annots_cams_and_ims_disagree(zju_copy):
    path = zju_copy / "annots.npy"
    annots = np.load(path, allow_pickle=True).item()
    annots["ims"][0]["ims"] = annots["ims"][0]["ims"][:-2]
    np.save(path, np.array(annots, dtype=object), allow_pickle=True)
    with pytest.raises(DataReadError, match="frame 0 lists") as info:
        open_dataset(zju_copy).sequence("CoreView_902")
    assert info.value.path == path


def test_renderpeople_camera_count_disagrees_with_folders(rp_copy):
    path = rp_copy / "cameras.json"
    cams = json.loads(path.read_text())
    cams["camera0099"] = cams["camera0000"]
    path.write_text(json.dumps(cams))
    with pytest.raises(DataReadError, match="camera folder is missing") as info:
        open_dataset(rp_copy).sequence(rp_copy.name)
    assert info.value.path == rp_copy / "img" / "camera0099"


@pytest.mark.parametrize("key,bad", [("K", np.nan), ("R", np.inf), ("T", np.nan)])
def test_non_finite_camera_zju(zju_copy, key, bad):
    path = zju_copy / "annots.npy"
    annots = np.load(path, allow_pickle=True).item()
    m = np.array(annots["cams"][key][3], dtype=np.float64)
    m.flat[0] = bad
    annots["cams"][key][3] = m
    np.save(path, np.array(annots, dtype=object), allow_pickle=True)
    with pytest.raises(DataReadError, match=f"camera 3: {key} contains NaN or Inf") as info:
        open_dataset(zju_copy).sequence("CoreView_902")
    assert info.value.path == path


def test_non_finite_camera_renderpeople(rp_copy):
    path = rp_copy / "cameras.json"
    text = path.read_text()
    cams = json.loads(text)
    cams["camera0001"]["K"][0][0] = float("nan")
    path.write_text(json.dumps(cams))  # json writes NaN, Python reads it back
    with pytest.raises(DataReadError, match="camera0001: K contains NaN") as info:
        open_dataset(rp_copy).sequence(rp_copy.name)
    assert info.value.path == path


@pytest.mark.parametrize("copy", ["zju_copy", "rp_copy"])
def test_mask_of_wrong_size(request, copy):
    seq = request.getfixturevalue(copy)
    view = _first_view(seq, frame=2, cam=0)
    bad = view.mask_paths[0]
    cv2.imwrite(str(bad), np.ones((40, 50), np.uint8))
    with pytest.raises(DataReadError, match="mask is 50x40") as info:
        load_view(view)
    assert info.value.path == bad


def test_unreadable_annots(zju_copy):
    (zju_copy / "annots.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DataReadError, match="cannot read annots.npy"):
        open_dataset(zju_copy).sequence("CoreView_902")


def test_cli_reports_bad_input_without_traceback(zju_copy):
    path = zju_copy / "annots.npy"
    annots = np.load(path, allow_pickle=True).item()
    annots["cams"]["K"][0] = np.full((3, 3), np.nan)
    np.save(path, np.array(annots, dtype=object), allow_pickle=True)
    result = runner.invoke(app, ["data", "inspect", str(zju_copy), "--json"])
    assert result.exit_code == 2
    assert "annots.npy" in result.output and "NaN" in result.output
    assert "Traceback" not in result.output


def test_cli_rejects_unknown_folder(tmp_path):
    result = runner.invoke(app, ["data", "inspect", str(tmp_path)])
    assert result.exit_code == 2
    assert "not a ZJU-MoCap folder" in result.output
