"""trackflow's web UI, served by the tracking server at ``/``.

Server-rendered pages (Jinja2) with htmx for the parts that load as you go
(table pages, tree levels) and uPlot for charts; the JavaScript libraries come
from pinned npm packages fetched at build time (:mod:`tracking.ui.vendoring`).
MLflow's URL scheme (``/#/experiments/{id}/runs/{run_id}``) opens the matching
pages, so the links the mlflow client and the integrations print all work.
A pipeline run's page shows its steps' timeline and lineage graph, and each
pipeline has a history page (:mod:`tracking.ui.pipeline`, drawn on the server).

:func:`tracking.ui.app.install_ui` adds it to the server's app.
"""
