"""The Prefect ``distill`` flow against the session's Prefect server, and the retry rule."""

import pytest

from storage.catalog import Catalog
from storage.root import StorageRoot


@pytest.mark.slow
def test_distill_flow_under_prefect(zju_root, tmp_path, prefect_api):
    from prefect.client.orchestration import get_client

    from flows.distill import distill_flow

    store = tmp_path / "store"
    state = distill_flow(dataset=str(zju_root), teacher="gt-joints", out=str(store), frames_per_shard=2,
                         teacher_concurrency=1, return_state=True)
    assert state.is_completed()
    assert state.result() == {"written": 4}
    flow_run_id = str(state.state_details.flow_run_id)
    entries = Catalog(StorageRoot(store)).current()
    assert {e.flow_run_id for e in entries} == {flow_run_id}
    again = distill_flow(dataset=str(zju_root), teacher="gt-joints", out=str(store), frames_per_shard=2)
    assert again == {"skipped": 4}

    import asyncio

    async def artifacts():
        async with get_client() as client:
            return await client.read_artifacts()

    keys = {a.key for a in asyncio.run(artifacts()) if str(a.flow_run_id) == flow_run_id}
    assert {"distill-gt-joints", "distill-gt-joints-preview"} <= keys

    async def limit():
        async with get_client() as client:
            return await client.read_concurrency_limit_by_tag("teacher-gt-joints")

    assert asyncio.run(limit()).concurrency_limit == 1


def test_retry_condition_only_for_transient_errors():
    from flows.distill import is_transient

    class State:
        def __init__(self, exc):
            self.exc = exc

        def result(self):
            raise self.exc

    from ghnerf.base.errors import DataReadError

    assert is_transient(None, None, State(ConnectionError("reset")))
    assert is_transient(None, None, State(TimeoutError()))
    assert not is_transient(None, None, State(DataReadError("/x.jpg", "corrupt")))
    assert not is_transient(None, None, State(ValueError("schema")))
