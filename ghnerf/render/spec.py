"""What a user asks of a render (:class:`RenderSpec`): every option of ``ghnerf render`` and every parameter of the
``render`` flow, declared once here."""

from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from ghnerf.base.spec_fields import OutputFolder
from ghnerf.render.cameras_path import DEFAULT_TURN_VIEWS, PATHS, VIEWS_PER_GAP
from ghnerf.render.panels import OVERLAYS


class RenderSpec(BaseModel):
    """A render, as a user asks for it (``ghnerf render``, the ``render`` flow)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    run: str = Field(..., description="run folder written by `ghnerf train`", json_schema_extra={"cli": "argument"})
    data: str = Field(..., description="dataset folder")
    subject: str = Field(..., description="subject to render")
    out: OutputFolder = Field(..., description="output folder: render.mp4, render.gif (short renders), render.json")
    frames: str = Field(":", description="frame indices START:STOP[:STEP] (Python slice) or one index")
    path: str = Field("orbit", description=" | ".join(PATHS))
    views: int | None = Field(None, ge=1, description=f"virtual cameras on the path (default: orbit one per frame, "
                                                      f"{DEFAULT_TURN_VIEWS} for a single frame; interpolate "
                                                      f"{VIEWS_PER_GAP} per gap between capture cameras)")
    size: tuple[PositiveInt, PositiveInt] | None = Field(None, description="H W of the rendered views (default: as "
                                                                               "trained)")
    overlay: str = Field("all", description=" | ".join(OVERLAYS))
    fps: float = Field(15.0, gt=0, description="video frames per second")
    frames_dir: OutputFolder | None = Field(None, description="also write every video frame as a PNG here")
    gif_max_frames: int = Field(120, ge=0, description="write render.gif when the video has at most this many frames")
    source_views: int | None = Field(None, ge=2, description="source views per view (default: as trained)")
    checkpoint: str | None = Field(None, description="checkpoint (default RUN/checkpoints/latest.pt)")
    device: str = Field("auto", description="auto | cpu | cuda")
