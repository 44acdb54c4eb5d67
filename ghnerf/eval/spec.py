"""What a user asks of an evaluation (:class:`EvaluateSpec`): every option of ``ghnerf evaluate`` and every parameter
of the ``evaluate`` flow, declared once here; checked before anything is read. Light to import (no torch)."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ghnerf.student.config import source_views_problem
from storage.root import StorageOptions


class EvaluateSpec(BaseModel):
    """An evaluation of a trained run on a dataset split."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    run: str = Field(..., description="run folder written by `ghnerf train`", json_schema_extra={"cli": "argument"})
    data: str = Field(..., description="dataset folder")
    split: Literal["test", "train"] = Field("test", description="test | train")
    max_views: int | None = Field(None, ge=1, description="evaluate at most N views")
    checkpoint: str | None = Field(None, description="checkpoint (default RUN/checkpoints/latest.pt)")
    targets: str | None = Field(None, description="storage root of distilled targets (for CSE and --teacher)")
    cse_teacher: str | None = Field(None, description="CSE teacher whose targets to compare with")
    teacher: str | None = Field(None, description="pose teacher to compare with (with --targets): where student and "
                                                  "teacher disagree, disagreement.json")
    source_views: int | None = Field(None, description="source views per target (default: as trained; the split's "
                                                       "training cameras are the candidates)")
    allow_partial_targets: bool = Field(False, description="compare with the shards that are there when some the "
                                                           "catalog lists are missing or damaged (default: refuse "
                                                           "and name them)")
    storage_options: StorageOptions = None

    @field_validator("source_views")
    @classmethod
    def _source_views(cls, n: int | None) -> int | None:
        if n is not None and source_views_problem(n):
            raise ValueError(source_views_problem(n))
        return n

    @model_validator(mode="after")
    def _targets_for_teachers(self) -> "EvaluateSpec":
        if (self.teacher or self.cse_teacher) and not self.targets:
            raise ValueError("--teacher and --cse-teacher read the teacher's shards: pass --targets ROOT (the storage "
                             "root `ghnerf distill` wrote)")
        return self
