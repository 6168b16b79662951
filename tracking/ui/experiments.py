"""``/``: the experiments, with search, run counts and last activity.

Creating, renaming, deleting and restoring go through the REST API from the
page's script (``static/app.js``), so they get the API's checks and messages.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from tracking.entities import PagedList, ViewType
from tracking.errors import TrackingError
from tracking.server.state import StateDep
from tracking.store.sql.browse import experiment_summaries
from tracking.ui.render import VIEWS, page

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
_PAGE = 500


def _name_filter(text: str) -> str:
    """``name ILIKE '%text%'`` with LIKE's wildcards and the quote escaped."""
    like = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    literal = like.replace("\\", "\\\\").replace("'", "\\'")  # the grammar's escapes
    return f"name ILIKE '%{literal}%'"


@router.get("/")
def experiments_page(
    request: Request,
    state: StateDep,
    q: str = "",
    view: str = "active",
    page_token: str | None = None,
) -> Response:
    """The experiment list (MLflow's ``/#/...`` links are forwarded by the page's script)."""
    chosen = VIEWS.get(view, ViewType.ACTIVE_ONLY)
    error = None
    try:
        found = state.store.search_experiments(
            view_type=chosen,
            max_results=_PAGE,
            filter_string=_name_filter(q.strip()) if q.strip() else "",
            order_by=["last_update_time DESC"],
            page_token=page_token,
        )
    except TrackingError as exc:
        found, error = PagedList(), str(exc)
    summaries = experiment_summaries(state.store, [e.experiment_id for e in found])
    return page(
        request,
        "experiments.html",
        experiments=found,
        summaries=summaries,
        q=q,
        view=view if view in VIEWS else "active",
        next_token=getattr(found, "token", None),
        error=error,
    )
