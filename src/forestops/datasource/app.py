"""The HTTP face of the batch data API (the course's contract, reproduced).

``/data`` answers with bytes assembled from the rows' pre-serialised JSON
fragments: no per-call parsing, conversion or file access, so a call costs
a random sample and a join.  Out-of-range groups and finished groups are
the client's business and answer 400 with a sentence saying what to do;
FastAPI's own 422 covers a missing or non-integer ``group_number``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from forestops import schema
from forestops.body_limit import BodyLimit
from forestops.datasource.batches import AllBatchesServed, BatchSchedule, InvalidGroup, Portion
from forestops.datasource.dataset import ServedDataset
from forestops.settings import Settings


class DataAnswer(BaseModel):
    group_number: int
    batch_number: int
    data: list[list[str]] = Field(description=f"Rows of 13 strings: {', '.join(schema.RAW_COLUMNS)}.")


class StatusAnswer(BaseModel):
    group_number: int
    batch_number: int | None = Field(description="Current batch; null before the group's first /data call.")
    batch_count: int
    batches_remaining: int = Field(description="Batches not started yet.")
    finished: bool = Field(description="True when the next /data call would answer 400 (all batches served).")
    batch_started_at: str | None
    window_ends_at: str | None = Field(description="End of the current batch's window (UTC).")
    next_batch_at: str | None = Field(description="From then, the next /data call moves on; null for the last batch.")
    seconds_to_next_batch: float | None
    batch_seconds: float
    rows_per_batch: int
    portion_size: int


class Problem(BaseModel):
    detail: str


GroupNumber = Annotated[int, Query(description="Your group number (1..FORESTOPS_GROUP_COUNT, 10 by default).")]
CLIENT_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "Group out of range, or all batches served."}
}


def render_portion(portion: Portion, fragments: Sequence[bytes]) -> bytes:
    """The /data body, joined from the rows' ready JSON: no per-row serialisation per call."""
    return b"".join(
        (
            b'{"group_number":%d,"batch_number":%d,"data":[' % (portion.group_number, portion.batch_number),
            b",".join([fragments[index] for index in portion.indices]),
            b"]}",
        )
    )


def create_app(settings: Settings, dataset: ServedDataset, schedule: BatchSchedule | None = None) -> FastAPI:
    schedule = schedule or BatchSchedule.from_settings(settings, dataset.row_count)
    fragments = dataset.fragments
    app = FastAPI(
        title="forestops batch data API",
        description=(
            f"Serves {dataset.row_count} Forest Cover Type rows to {schedule.group_count} independent groups in "
            f"{schedule.batch_count} batches of {schedule.batch_seconds:g} s each."
        ),
    )
    # The API takes no bodies; the limit keeps a hostile client from making it buffer one.
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes)

    @app.exception_handler(InvalidGroup)
    @app.exception_handler(AllBatchesServed)
    async def client_problem(request: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=400)

    @app.get("/data", response_model=DataAnswer, response_class=Response, responses=CLIENT_ERRORS)
    def data(group_number: GroupNumber) -> Response:
        """A new random portion of the group's current batch (the first call starts batch 1)."""
        return Response(render_portion(schedule.next_portion(group_number), fragments), media_type="application/json")

    @app.get("/restart_data_generation", responses=CLIENT_ERRORS)
    def restart_data_generation(group_number: GroupNumber) -> dict:
        """Start the group again: its next /data call serves batch 1."""
        schedule.restart(group_number)
        return {
            "group_number": group_number,
            "restarted": True,
            "detail": f"group {group_number} starts again at batch 1 on its next /data call",
        }

    @app.get("/status", response_model=StatusAnswer, responses=CLIENT_ERRORS)
    def status(group_number: GroupNumber) -> dict:
        """Where the group is and when its batch changes; reading it changes nothing."""
        return schedule.status(group_number)

    @app.get("/health")
    def health() -> dict:
        return {
            "status": "ok",
            "rows": dataset.row_count,
            "holdout_rows": dataset.holdout_rows,
            "source": str(dataset.source),
            "batch_count": schedule.batch_count,
            "group_count": schedule.group_count,
            "batch_seconds": schedule.batch_seconds,
        }

    return app
