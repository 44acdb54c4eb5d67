"""Generate a synthetic multi-view human dataset in the real ZJU-MoCap or RenderPeople layout.

Each subject gets its own body proportions, appearance, motion and camera ring,
all drawn from ``SeedSequence([seed, subject_index])`` so a subject does not
change when more subjects are asked for. Each subject folder is written under a
temporary name and renamed into place when complete.
"""

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ghnerf.base.cameras import Camera, look_at
from ghnerf.base.errors import ConfigError
from ghnerf.synth.body import JOINT_DEPTH_TOLERANCE, Body, BodyShape, PosedBody, SurfaceSampling, pose_body
from ghnerf.synth.motion import MotionStyle, pose_at
from ghnerf.synth.render import Appearance, ViewRender, background, render_view

GENERATOR_VERSION = "1"
CONF_VISIBLE, CONF_OCCLUDED = 1.0, 0.5


class SynthConfig(BaseModel):
    """Options of ``ghnerf data synth`` (one source of defaults)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    layout: Literal["zju", "renderpeople"] = "zju"
    subjects: int = Field(4, ge=1, le=1000)
    frames: int = Field(10, ge=1, le=10000)
    cameras: int = Field(8, ge=2, le=64)
    size: int = Field(256, ge=64, le=2048, description="image height and width in pixels")
    seed: int = Field(0, ge=0)
    distortion: bool | None = Field(None, description="mild radial distortion (ZJU only; default on for ZJU)")
    zju_naming: Literal["auto", "b", "paren"] = Field(
        "auto", description="ZJU image folders: 'b' = Camera_B1/000000.jpg, 'paren' = CoreView_313-style "
                            "'Camera (1)' with 1-based long names, 'auto' = first subject paren, the rest b")
    missing_rate: float = Field(0.0, ge=0, lt=1, description="share of kpts2d joints blanked (conf 0), as real "
                                                             "ZJU-MoCap annotations have gaps")
    jpeg_quality: int = Field(95, ge=50, le=100)

    @model_validator(mode="after")
    def _check(self) -> "SynthConfig":
        if self.layout == "renderpeople" and self.distortion:
            raise ValueError("the RenderPeople layout has no distortion; drop --distortion")
        return self

    @property
    def use_distortion(self) -> bool:
        return self.layout == "zju" if self.distortion is None else self.distortion


@dataclass(frozen=True, eq=False)
class SubjectRig:
    """Everything fixed for one synthetic subject."""

    index: int
    body: Body
    appearance: Appearance
    style: MotionStyle
    cameras: tuple[Camera, ...]
    backdrop: str
    seed: int


@dataclass(frozen=True, eq=False)
class FrameRender:
    """One rendered frame.

    Attributes:
        posed: the posed body.
        joints3d: (25, 3) world joints, metres.
        vertices: (V, 3) world surface vertices, metres.
        joints2d: (C, 25, 3) per camera (x, y) on the raw (distorted) image and confidence
            (1 visible, 0.5 self-occluded, 0 outside the image).
        views: one :class:`ViewRender` per camera.
    """

    posed: PosedBody
    joints3d: np.ndarray
    vertices: np.ndarray
    joints2d: np.ndarray
    views: tuple[ViewRender, ...]


def ring_cameras(rng: np.random.Generator, n: int, size: int, distortion: bool) -> tuple[Camera, ...]:
    """``n`` cameras on a ring around the origin, at varying radius and height, looking at the body."""
    cams = []
    offset = rng.uniform(0, 2 * np.pi)
    for k in range(n):
        az = offset + 2 * np.pi * k / n + rng.uniform(-0.15, 0.15) * 2 * np.pi / n
        radius = rng.uniform(2.7, 3.4)
        eye = np.array([radius * np.cos(az), radius * np.sin(az), rng.uniform(0.7, 1.7)])
        target = np.array([0.0, 0.0, 0.95]) + rng.normal(0, [0.05, 0.05, 0.05])
        R, T = look_at(eye, target)
        f = size * 1.1 * radius / 3.0 * rng.uniform(0.97, 1.03)
        K = np.array([[f, 0, size / 2 + rng.uniform(-3, 3)], [0, f, size / 2 + rng.uniform(-3, 3)], [0, 0, 1.0]])
        D = np.array([rng.uniform(-0.22, -0.10), rng.uniform(0.0, 0.05), 0, 0, 0]) if distortion else np.zeros(5)
        cams.append(Camera(K=K, R=R, T=T, D=D, height=size, width=size))
    return tuple(cams)


def build_subject(cfg: SynthConfig, index: int) -> SubjectRig:
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, index]))
    body = Body(BodyShape.random(rng))
    appearance = Appearance.random(rng)
    style = MotionStyle.random(rng)
    cameras = ring_cameras(rng, cfg.cameras, cfg.size, cfg.use_distortion)
    backdrop = "studio" if cfg.layout == "zju" else "black"
    return SubjectRig(index, body, appearance, style, cameras, backdrop, int(rng.integers(2**31)))


def joints_2d(joints3d: np.ndarray, camera: Camera, depth: np.ndarray) -> np.ndarray:
    """(25, 3) raw-image (x, y, confidence): 1 visible, 0.5 behind the body surface, 0 outside the image."""
    uv = camera.project(joints3d)
    z = camera.to_camera(joints3d)[:, 2]
    out = np.zeros((len(uv), 3))
    out[:, :2] = uv
    px = np.round(uv).astype(int)
    inside = (px[:, 0] >= 0) & (px[:, 0] < camera.width) & (px[:, 1] >= 0) & (px[:, 1] < camera.height) & (z > 0)
    for j in np.flatnonzero(inside):
        surface = depth[px[j, 1], px[j, 0]]
        visible = surface == 0 or z[j] - surface <= JOINT_DEPTH_TOLERANCE[j]
        out[j, 2] = CONF_VISIBLE if visible else CONF_OCCLUDED
    return out


def render_frame(rig: SubjectRig, sampling: SurfaceSampling, frame: int,
                 rays: list[tuple[np.ndarray, np.ndarray]], backgrounds: list[np.ndarray]) -> FrameRender:
    posed = pose_body(rig.body, pose_at(rig.style, frame))
    vertices = sampling.posed_vertices(posed)
    views = tuple(render_view(posed, rig.appearance, cam, rays[c], backgrounds[c], vertices)
                  for c, cam in enumerate(rig.cameras))
    j2d = np.stack([joints_2d(posed.joints, cam, v.depth) for cam, v in zip(rig.cameras, views)])
    return FrameRender(posed, posed.joints, vertices, j2d, views)


def iter_frames(rig: SubjectRig, sampling: SurfaceSampling, frames: int):
    rays = [cam.pixel_rays() for cam in rig.cameras]
    bgs = [background(cam, rig.backdrop, rig.seed + c) for c, cam in enumerate(rig.cameras)]
    for f in range(frames):
        yield f, render_frame(rig, sampling, f, rays, bgs)


def generate_dataset(cfg: SynthConfig, out: str | Path, overwrite: bool = False,
                     on_frame: Callable[[str, int], None] | None = None) -> list[Path]:
    """Write the dataset; returns the subject folders.

    Args:
        cfg: generator options.
        out: dataset root (created).
        overwrite: replace subject folders that already exist.
        on_frame: called after each written frame with (subject, frame), for progress bars.
    Raises:
        ConfigError: a subject folder exists and ``overwrite`` is not set.
    """
    from ghnerf.synth import writers  # local: writers import this module's types

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sampling = SurfaceSampling()
    writer = writers.make_writer(cfg, out, sampling)
    written = []
    for i in range(cfg.subjects):
        rig = build_subject(cfg, i)
        final = out / writer.subject_name(i)
        if final.exists() and not overwrite:
            raise ConfigError(f"{final} already exists; pass --overwrite to replace it or choose another OUT")
        tmp = out / f".{final.name}.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        writer.begin_subject(rig, tmp)
        for f, fr in iter_frames(rig, sampling, cfg.frames):
            writer.write_frame(rig, tmp, f, fr)
            if on_frame:
                on_frame(final.name, f)
        writer.end_subject(rig, tmp)
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        written.append(final)
    writer.end_dataset([p.name for p in written])
    return written
