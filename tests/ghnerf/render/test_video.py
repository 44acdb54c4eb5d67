"""Video files decode back: frame count, size, pixels; bad input refused; nothing left half-written."""

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from ghnerf.base.errors import ConfigError
from ghnerf.render.video import Mp4Writer, write_animation


def _frames(n: int, h: int, w: int) -> list[np.ndarray]:
    """Frame i: a flat grey level 40 + 20 i with a white square moving right (easy for a lossy codec)."""
    out = []
    for i in range(n):
        f = np.full((h, w, 3), 40 + 20 * i, np.uint8)
        f[8:24, 4 + 4 * i:20 + 4 * i] = 255
        out.append(f)
    return out


def test_mp4_is_h264_and_decodes_back_to_the_frames(tmp_path):
    frames = _frames(7, 48, 80)
    path = tmp_path / "v" / "render.mp4"
    with Mp4Writer(path, fps=10) as video:
        for f in frames:
            video.write(f)
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = reader.__next__()
    assert meta["codec"] == "h264" and meta["size"] == (80, 48) and meta["fps"] == 10
    decoded = [np.frombuffer(b, np.uint8).reshape(48, 80, 3) for b in reader]
    assert len(decoded) == 7
    for got, want in zip(decoded, frames):
        assert np.abs(got.astype(int) - want).mean() < 3  # lossy, but the same picture
    assert sorted(p.name for p in path.parent.iterdir()) == ["render.mp4"]  # no temporary file left


def test_mp4_pads_odd_sizes_and_refuses_mixed_sizes_and_empty_videos(tmp_path):
    path = tmp_path / "odd.mp4"
    with Mp4Writer(path, fps=5) as video:
        video.write(_frames(1, 33, 47)[0])
    assert imageio_ffmpeg.read_frames(str(path)).__next__()["size"] == (48, 34)
    with pytest.raises(ConfigError, match="frame 1 is"):
        with Mp4Writer(tmp_path / "mixed.mp4", fps=5) as video:
            video.write(_frames(1, 32, 32)[0])
            video.write(_frames(1, 48, 32)[0])
    with pytest.raises(ConfigError, match="no frames"):
        with Mp4Writer(tmp_path / "empty.mp4", fps=5):
            pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd.mp4"]
    with pytest.raises(ConfigError, match="fps"):
        Mp4Writer(tmp_path / "x.mp4", fps=0)


@pytest.mark.parametrize("suffix", [".gif", ".webp"])
def test_animation_reads_back_with_every_frame(tmp_path, suffix):
    frames = _frames(5, 32, 40)
    path = tmp_path / f"render{suffix}"
    write_animation(path, frames, fps=10)
    with Image.open(path) as im:
        assert im.size == (40, 32) and im.n_frames == 5 and im.info.get("loop") == 0
        im.seek(3)
        got = np.asarray(im.convert("RGB"))
    assert np.abs(got.astype(int) - frames[3]).mean() < 4
    with pytest.raises(ConfigError, match=".gif or .webp"):
        write_animation(tmp_path / "render.avi", frames, fps=10)


@pytest.mark.parametrize("fps", [15, 24, 10])
def test_gif_plays_at_the_asked_frame_rate(tmp_path, fps):
    """GIF delays are whole centiseconds: one rounded delay for every frame (60 ms for 15 fps) plays at 16.7 fps."""
    n = 3 * fps  # three seconds
    write_animation(tmp_path / "a.gif", [np.full((16, 16, 3), 3 * i, np.uint8) for i in range(n)], fps=fps)
    delays = []
    with Image.open(tmp_path / "a.gif") as im:
        for i in range(im.n_frames):
            im.seek(i)
            delays.append(im.info["duration"])
    assert len(delays) == n and sum(delays) == 3000  # exactly 3 s
    assert all(abs(d - 1000 / fps) < 10 for d in delays)
