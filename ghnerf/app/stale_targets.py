"""Targets whose input files changed since distill (:mod:`storage.inputs`), computed again: the shards of the
stale entries are run again with the options their entries record (``train --recompute-stale-targets``)."""

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ghnerf.app.distill import ShardResult, run_shard
from ghnerf.app.distill_config import DistillConfig
from ghnerf.app.shard_planning import dataset_identity, shard_plan
from ghnerf.base.errors import ConfigError
from ghnerf.data import open_dataset
from storage.catalog import CatalogEntry
from storage.inputs import InputChecker
from storage.root import StorageRoot

if TYPE_CHECKING:
    from ghnerf.student.train_spec import TrainSpec


def recompute_stale(entries: list[CatalogEntry], store: StorageRoot, data_root: str | Path,
                    consistency_fn: Callable | None = None) -> list[ShardResult]:
    """Run the teacher again for the shards among ``entries`` whose input files changed (:mod:`storage.inputs`),
    each with the teacher and target options its entry records, over exactly its frames of ``data_root``.

    The new shard's key differs (its inputs' hashes do), so it supersedes the stale one in its slot.
    """
    root = Path(data_root)
    checker = InputChecker(root)
    stale = [e for e in entries if checker.stale(e)]
    if not stale:
        return []
    reader = open_dataset(root)
    dataset_id = dataset_identity(root, reader)
    results = []
    for e in stale:
        options = json.loads(e.config_json)
        cfg = DistillConfig(teacher=options["teacher"], teacher_options=options.get("teacher_options", {}),
                            stride=options["stride"], sigma=options["sigma"], subjects=(e.subject,))
        teacher = cfg.build()
        seq = reader.sequence(e.subject)
        position = {seq.frame(i).frame_id: i for i in range(seq.num_frames)}
        missing = [f for f in e.frame_ids if f not in position]
        if missing:
            raise ConfigError(f"{root / e.subject}: frames {missing} of stale shard {e.shard_path} are no longer in "
                              "the dataset; rerun `ghnerf distill`")
        plan = shard_plan(root, reader, dataset_id, cfg, teacher, e.subject,
                          tuple(position[f] for f in e.frame_ids))
        results.append(run_shard(plan, cfg, teacher, store, consistency_fn=consistency_fn))
    return results


def recompute_stale_targets(spec: "TrainSpec", log: Callable[[str], None] = print) -> None:
    """``train --recompute-stale-targets``: before a run, the stale shards of the spec's teachers are computed
    again (:func:`recompute_stale`), so that the run's own check of its targets' inputs passes."""
    from storage.targets import TargetStore

    if not spec.recompute_stale_targets:
        return
    for teacher in (t for t in (spec.teacher, spec.cse_teacher) if t):
        store = TargetStore(spec.targets, teacher, storage_options=spec.storage_options,
                            allow_partial=spec.allow_partial_targets)
        for r in recompute_stale(store.entries, store.root, spec.data):
            log(f"recomputed stale shard of {r.subject} frames {r.frame_ids[0]}-{r.frame_ids[-1]} "
                f"(--recompute-stale-targets): {r.status}, {r.rows} rows -> {r.shard_path}")
