"""`ghnerf render` on a tiny trained run: the video, the animation and the PNG frames agree and decode back."""

import json

import cv2
import imageio_ffmpeg
import numpy as np
from PIL import Image
from typer.testing import CliRunner

from ghnerf.app.cli import app

runner = CliRunner()


def test_render_writes_a_video_that_decodes_back(tiny_run, student_root, tmp_path):
    out, pngs = tmp_path / "orbit", tmp_path / "frames"
    result = runner.invoke(app, ["render", str(tiny_run), "--data", str(student_root), "--subject", "CoreView_902",
                                 "--frames", "0:2", "--views", "5", "--out", str(out), "--frames-dir", str(pngs)])
    assert result.exit_code == 0, result.output
    assert "frames/s" in result.output
    info = json.loads((out / "render.json").read_text())
    # 2 frames and 5 cameras advance together: max(2, 5) video frames, frames cycling 0, 1, 0, 1, 0
    assert info["frames"] == 5 and [v["frame_index"] for v in info["views"]] == [0, 1, 0, 1, 0]
    # ghnerf-resnet18 has a heatmap head and no CSE head: RGB | heatmaps | skeleton, 64 x 64 each (as trained)
    assert info["panels"] == 3 and info["size"] == [64, 192] and info["fps"] > 0
    assert all(len(v["sources"]) == 3 for v in info["views"])
    reader = imageio_ffmpeg.read_frames(str(out / "render.mp4"))
    meta = next(reader)
    assert meta["codec"] == "h264" and meta["size"] == (192, 64)
    video = [np.frombuffer(b, np.uint8).reshape(64, 192, 3) for b in reader]
    assert len(video) == 5
    frames = [cv2.imread(str(pngs / f"{i:05d}.png"))[..., ::-1] for i in range(5)]
    assert sorted(p.name for p in pngs.iterdir()) == [f"{i:05d}.png" for i in range(5)]
    for got, png in zip(video, frames):
        assert png.shape == (64, 192, 3) and np.abs(got.astype(int) - png).mean() < 6
    assert frames[0][..., :64].max() > 0  # the subject is in view
    with Image.open(out / "render.gif") as gif:
        assert gif.n_frames == 5 and gif.size == (192, 64)
    # the capture cameras path: one view per camera, rendered at a requested size
    result = runner.invoke(app, ["render", str(tiny_run), "--data", str(student_root), "--subject", "CoreView_902",
                                 "--frames", "1", "--path", "cameras", "--size", "32", "32", "--overlay", "none",
                                 "--out", str(tmp_path / "cams")])
    assert result.exit_code == 0, result.output
    info = json.loads((tmp_path / "cams" / "render.json").read_text())
    assert info["frames"] == 8 and info["size"] == [32, 32] and info["panels"] == 1
    assert len(list(imageio_ffmpeg.read_frames(str(tmp_path / "cams" / "render.mp4")))) == 1 + 8


def test_render_refuses_bad_options_in_one_line(tiny_run, student_root, tmp_path):
    base = ["render", str(tiny_run), "--data", str(student_root), "--out", str(tmp_path / "x")]
    cases = [(["--subject", "CoreView_999"], "no subject 'CoreView_999'"),
             (["--subject", "CoreView_902", "--overlay", "cse"], "CSE head"),
             (["--subject", "CoreView_902", "--path", "spiral"], "choose one of orbit"),
             (["--subject", "CoreView_902", "--frames", "5:9"], "selects none"),
             (["--subject", "CoreView_902", "--size", "64", "40"], "aspect ratio")]
    for extra, message in cases:
        result = runner.invoke(app, base + extra)
        assert result.exit_code == 2 and message in result.output, (extra, result.output)
        assert "Traceback" not in result.output
    assert not (tmp_path / "x" / "render.mp4").exists()
