"""What to distill and how (:class:`DistillConfig`, one source of defaults) and a distillation as a user asks for it
(:class:`DistillSpec`: the options of ``ghnerf distill`` and the ``distill`` flow's parameters)."""

import hashlib
import json

from pydantic import BaseModel, ConfigDict, Field

from ghnerf.app.teacher_registry import build_teacher
from ghnerf.base.spec_fields import OutputRoot
from storage.root import StorageOptions
from teachers.base import Teacher

SIGMA_MAX = 128.0  # image pixels: a Gaussian this wide is flat over a 256 px person, it locates no joint


class DistillConfig(BaseModel):
    """What to distill and how (one source of defaults; the target-shaping part is hashed into lineage)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    teacher: str = Field(..., description="teacher name (see `ghnerf teachers list`)")
    teacher_options: dict[str, str | int | float] = Field(
        default_factory=dict, description="teacher option (e.g. checkpoint=PATH)",
        json_schema_extra={"cli": {"as": "pairs", "option": "teacher-opt", "example": "checkpoint=PATH",
                                   "json": False}})
    stride: int = Field(2, ge=1, le=16, description="image pixels per target cell")
    sigma: float = Field(7.0, gt=0, le=SIGMA_MAX, description="heatmap Gaussian sigma in image pixels (OpenPose: 7; "
                                                         f"at most {SIGMA_MAX:g}: wider is a flat map)")
    frames_per_shard: int | None = Field(None, ge=1, description="frames per shard (default: from --shard-mb)")
    shard_mb: float = Field(128.0, gt=0, description="target shard size in MB")
    subjects: tuple[str, ...] | None = Field(None, description="only these subjects (default: all)",
                                             json_schema_extra={"cli": "hidden"})
    max_frames: int | None = Field(None, ge=1, description="only the first N frames of each subject")

    def target_config(self) -> dict:
        """The options that change target values (what the config hash covers)."""
        return {"teacher": self.teacher, "teacher_options": dict(sorted(self.teacher_options.items())),
                "stride": self.stride, "sigma": self.sigma}

    def config_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.target_config(), sort_keys=True).encode()).hexdigest()[:16]

    def build(self) -> Teacher:
        return build_teacher(self.teacher, {**self.teacher_options, "stride": self.stride, "sigma": self.sigma})


class DistillSpec(DistillConfig):
    """A distillation as a user asks for it: the options of ``ghnerf distill`` and the ``distill`` flow's parameters
    (the :class:`DistillConfig` plus where to read and write)."""

    dataset: str = Field(..., description="dataset folder (ZJU-MoCap or RenderPeople layout)")
    out: OutputRoot = Field(..., description="storage root: local folder or fsspec URL (s3://bucket/prefix)")
    storage_options: StorageOptions = None
    teacher_concurrency: int | None = Field(
        None, ge=1, description="at most this many shards of this teacher at once across all flow runs (a Prefect "
                                "tag concurrency limit on teacher-<name>, created or reset by the flow)",
        json_schema_extra={"cli": "hidden"})

    def config(self) -> DistillConfig:
        """The distillation settings alone (what shards and lineage record)."""
        return DistillConfig(**self.model_dump(include=set(DistillConfig.model_fields)))
