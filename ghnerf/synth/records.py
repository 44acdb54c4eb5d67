"""What the synthetic generator is asked for and what it produces: its options, a subject's rig, a rendered frame.

Shared by :mod:`ghnerf.synth.generate` (which makes them) and :mod:`ghnerf.synth.writers` (which writes them).
"""

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ghnerf.base.cameras import Camera
from ghnerf.base.spec_fields import OutputFolder
from ghnerf.synth.body import Body, PosedBody
from ghnerf.synth.motion import MotionStyle
from ghnerf.synth.render import Appearance, ViewRender

GENERATOR_VERSION = "1"


class SynthConfig(BaseModel):
    """Options of ``ghnerf data synth`` (one source of defaults)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    layout: Literal["zju", "renderpeople"] = Field("zju", description="zju | renderpeople")
    subjects: int = Field(4, ge=1, le=1000, description="number of subjects")
    frames: int = Field(10, ge=1, le=10000, description="frames per subject")
    cameras: int = Field(8, ge=2, le=64, description="cameras on the ring")
    size: int = Field(256, ge=64, le=2048, description="image height and width in pixels")
    seed: int = Field(0, ge=0, description="random seed (same seed, same dataset)")
    distortion: bool | None = Field(None, description="mild radial distortion (ZJU only; default on for ZJU)")
    zju_naming: Literal["auto", "b", "paren"] = Field(
        "auto", description="ZJU image folders: 'b' = Camera_B1/000000.jpg, 'paren' = CoreView_313-style "
                            "'Camera (1)' with 1-based long names, 'auto' = first subject paren, the rest b")
    missing_rate: float = Field(0.0, ge=0, lt=1, description="share of kpts2d joints blanked (conf 0), as real "
                                                             "ZJU-MoCap annotations have gaps")
    jpeg_quality: int = Field(95, ge=50, le=100, description="JPEG quality of the images")

    @model_validator(mode="after")
    def _check(self) -> "SynthConfig":
        if self.layout == "renderpeople" and self.distortion:
            raise ValueError("the RenderPeople layout has no distortion; drop --distortion")
        return self

    @property
    def use_distortion(self) -> bool:
        return self.layout == "zju" if self.distortion is None else self.distortion


class SynthSpec(SynthConfig):
    """``ghnerf data synth``: the generator's options plus where to write."""

    out: OutputFolder = Field(..., description="dataset folder to write", json_schema_extra={"cli": "argument"})
    overwrite: bool = Field(False, description="replace existing subject folders")

    def config(self) -> SynthConfig:
        return SynthConfig(**self.model_dump(include=set(SynthConfig.model_fields)))


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
