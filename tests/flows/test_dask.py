"""Teacher fan-out with prefect-dask's DaskTaskRunner on a LocalCluster of 2 worker processes."""

import os

import pytest

from storage.catalog import Catalog
from storage.root import StorageRoot
from ghnerf.app.distill import DistillConfig, distill

pytestmark = pytest.mark.slow


def test_dask_fan_out_writes_the_same_shards_as_the_bare_loop(prefect_api, rp_root, tmp_path, monkeypatch):
    from flows.distill import distill_dask_flow

    monkeypatch.setenv("GHNERF_DASK_WORKERS", "2")
    state = distill_dask_flow(dataset=str(rp_root), teacher="gt-joints", out=str(tmp_path / "dask"),
                              frames_per_shard=1, return_state=True)
    assert state.is_completed(), state.message
    assert state.result() == {"written": 6}
    bare = distill(rp_root, tmp_path / "bare", DistillConfig(teacher="gt-joints", frames_per_shard=1))
    dask_entries = {e.shard_key: e for e in Catalog(StorageRoot(tmp_path / "dask")).current()}
    bare_entries = {e.shard_key: e for e in Catalog(StorageRoot(tmp_path / "bare")).current()}
    assert set(dask_entries) == set(bare_entries) == {r.key for r in bare.results}
    assert all(dask_entries[k].rows == bare_entries[k].rows for k in bare_entries)
    # the shards ran in Dask worker processes, not in this one, and both workers took part
    import json

    from flows.runs import artifacts_of

    table = next(a for a in artifacts_of(state.state_details.flow_run_id) if a.key == "distill-gt-joints")

    rows = json.loads(table.data) if isinstance(table.data, str) else table.data
    workers = {r["worker"] for r in rows}
    assert len(workers) == 2 and all(not w.endswith(f":{os.getpid()}") for w in workers)
