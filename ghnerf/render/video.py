"""Video files: H.264 MP4 through the ffmpeg binary that the ``imageio-ffmpeg`` wheel ships, animated GIF/WebP.

Both are written atomically (temporary file, then rename). H.264 in ``yuv420p`` (what
browsers and players decode) needs even sides: an odd height or width gets one black
row or column.
"""

from pathlib import Path

import numpy as np
from jaxtyping import UInt8
from PIL import Image

from ghnerf.base.errors import ConfigError
from ghnerf.base.fileio import atomic_path

MP4_QUALITY = 8  # imageio-ffmpeg's 0-10 scale (libx264 crf about 17)
GIF_TICK_MS = 10  # GIF frame delays are whole centiseconds


def even_size(frame: UInt8[np.ndarray, "H W 3"]) -> UInt8[np.ndarray, "H2 W2 3"]:
    """``frame`` padded with black to even height and width."""
    h, w = frame.shape[:2]
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)))


class Mp4Writer:
    """Streams RGB uint8 frames into an H.264 MP4; the file appears under its name only when closed cleanly.

    Use as a context manager; every frame must have the size of the first.
    """

    def __init__(self, path: str | Path, fps: float):
        if fps <= 0:
            raise ConfigError(f"fps must be > 0, got {fps}")
        self.path, self.fps = Path(path), fps
        self.frames, self._gen, self._size = 0, None, None

    def __enter__(self) -> "Mp4Writer":
        self._atomic = atomic_path(self.path, ".mp4")
        self._tmp = self._atomic.__enter__()
        return self

    def write(self, frame: UInt8[np.ndarray, "H W 3"]) -> None:
        import imageio_ffmpeg

        frame = even_size(np.ascontiguousarray(frame, dtype=np.uint8))
        if self._gen is None:
            self._size = frame.shape[:2]
            self._gen = imageio_ffmpeg.write_frames(str(self._tmp), (frame.shape[1], frame.shape[0]), fps=self.fps,
                                                    codec="libx264", pix_fmt_out="yuv420p", quality=MP4_QUALITY,
                                                    macro_block_size=1, ffmpeg_log_level="error")
            self._gen.send(None)
        elif frame.shape[:2] != self._size:
            raise ConfigError(f"{self.path}: frame {self.frames} is {frame.shape[:2]}, the video is {self._size}")
        self._gen.send(frame)
        self.frames += 1

    def __exit__(self, exc_type, exc, tb) -> bool:
        if self._gen is not None:
            self._gen.close()
        if exc_type is None and self.frames == 0:
            err = ConfigError(f"{self.path}: no frames to write")
            self._atomic.__exit__(ConfigError, err, None)  # removes the temporary file
            raise err
        return self._atomic.__exit__(exc_type, exc, tb)


def write_animation(path: str | Path, frames: list[UInt8[np.ndarray, "H W 3"]], fps: float) -> None:
    """An endlessly looping animated GIF or WebP (from the suffix) of RGB uint8 frames (Pillow)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".gif", ".webp"):
        raise ConfigError(f"{path}: animations are .gif or .webp")
    if not frames:
        raise ConfigError(f"{path}: no frames to write")
    if fps <= 0:
        raise ConfigError(f"fps must be > 0, got {fps}")
    images = [Image.fromarray(f) for f in frames]
    extra = {"optimize": False} if suffix == ".gif" else {"lossless": False, "quality": 80}
    tick = GIF_TICK_MS if suffix == ".gif" else 1
    with atomic_path(path) as tmp:
        images[0].save(tmp, save_all=True, append_images=images[1:], duration=frame_delays(len(frames), fps, tick),
                       loop=0, format=suffix[1:].upper(), **extra)


def frame_delays(n: int, fps: float, tick: int) -> list[int]:
    """Per-frame delays (ms, multiples of ``tick``) whose running sum stays within half a tick of ``i * 1000 / fps``:
    a GIF counts delays in 10 ms ticks, so 15 fps alternates 70, 70, 60 ms (one 60 or 70 ms delay for every
    frame would play at 16.7 or 14.3 fps)."""
    ends = [round((i + 1) * 1000 / fps / tick) * tick for i in range(n)]
    return [max(b - a, tick) for a, b in zip([0, *ends[:-1]], ends)]
