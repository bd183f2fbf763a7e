"""prelabel's own log lines reach the flow run's logs on the Prefect server."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from uuid import UUID

import pytest
from PIL import Image

from flows.ingest import ingest_flow
from flows.params import IngestParams
from tests.conftest import encode_image
from tests.support.http_faults import Site, serve

pytestmark = pytest.mark.usefixtures("prefect_server")


def _run_logs(flow_run_id: UUID) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    async def read() -> list[str]:
        async with get_client() as client:
            logs = await client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
        return [log.message for log in logs]

    return asyncio.run(read())


def test_a_retry_line_shows_in_the_flow_runs_logs(tmp_path: Path) -> None:
    from prefect.logging.handlers import APILogHandler

    png = encode_image(Image.new("RGB", (8, 6), (10, 200, 10)), "PNG")
    with serve(Site({"leaf.png": png})) as site:
        (tmp_path / "urls.txt").write_text(f"{site.url}/flaky/leaf.png\n")
        params = IngestParams(source=str(tmp_path / "urls.txt"), out=str(tmp_path / "m.csv"))
        state = ingest_flow(params, return_state=True)
    assert state.is_completed() and state.state_details.flow_run_id is not None
    APILogHandler().flush()
    wanted = f"GET {site.url}/flaky/leaf.png failed (HTTP 500); retry 1 of"
    for _ in range(40):  # the server stores logs shortly after they are sent
        messages = _run_logs(state.state_details.flow_run_id)
        if any(m.startswith(wanted) for m in messages):
            break
        time.sleep(0.5)
    assert any(m.startswith(wanted) for m in messages), messages
