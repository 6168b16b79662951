"""Conformance cases for the artifact graph (``record_lineage`` / ``get_lineage``)."""

from __future__ import annotations

import pytest

from tracking.client import TrackingClient
from tracking.entities import LineageEdge
from tracking.errors import InvalidParameterError, RunNotFoundError

__all__ = ["LineageSuite"]

SHA = "a" * 64
OTHER_SHA = "b" * 64


class LineageSuite:
    """Edges are stored once and read back from both ends."""

    def test_edges_read_back_from_both_ends(self, client: TrackingClient) -> None:
        train = client.create_run("0", run_name="train").info.run_id
        evaluate = client.create_run("0", run_name="evaluate").info.run_id
        report = client.create_run("0", run_name="report").info.run_id
        client.record_lineage(evaluate, train, "model/model.pkl", SHA, timestamp=1000)
        client.record_lineage(report, train, "model/model.pkl", SHA, timestamp=2000)
        client.record_lineage(report, evaluate, "metrics.json", OTHER_SHA, timestamp=3000)
        produced = client.get_lineage(train)
        assert produced.consumed == ()
        assert produced.produced == (
            LineageEdge(evaluate, train, "model/model.pkl", SHA, 1000),
            LineageEdge(report, train, "model/model.pkl", SHA, 2000),
        )
        middle = client.get_lineage(evaluate)
        assert [e.producer_run_id for e in middle.consumed] == [train]
        assert [e.consumer_run_id for e in middle.produced] == [report]
        assert [
            (e.producer_run_id, e.artifact_path) for e in client.get_lineage(report).consumed
        ] == [
            (train, "model/model.pkl"),
            (evaluate, "metrics.json"),
        ]

    def test_recording_again_keeps_one_edge(self, client: TrackingClient) -> None:
        producer = client.create_run("0").info.run_id
        consumer = client.create_run("0").info.run_id
        for _ in range(3):
            client.record_lineage(consumer, producer, "data.csv", SHA)
        assert len(client.get_lineage(consumer).consumed) == 1

    def test_unknown_runs_are_refused(self, client: TrackingClient) -> None:
        run_id = client.create_run("0").info.run_id
        with pytest.raises(RunNotFoundError):
            client.record_lineage(run_id, "f" * 32, "x.txt", SHA)
        with pytest.raises(RunNotFoundError):
            client.get_lineage("e" * 32)
        assert client.get_lineage(run_id).consumed == ()

    @pytest.mark.parametrize(
        ("path", "sha256", "fragment"),
        [
            pytest.param("../x", SHA, "artifact_path", id="traversal"),
            pytest.param("", SHA, "artifact_path", id="no-path"),
            pytest.param("x.txt", "abc", "sha256", id="short-sha"),
            pytest.param("x.txt", "A" * 64, "sha256", id="uppercase-sha"),
        ],
    )
    def test_bad_edges_are_refused(
        self, client: TrackingClient, path: str, sha256: str, fragment: str
    ) -> None:
        producer = client.create_run("0").info.run_id
        consumer = client.create_run("0").info.run_id
        with pytest.raises(InvalidParameterError, match=fragment):
            client.record_lineage(consumer, producer, path, sha256)
        assert client.get_lineage(consumer).consumed == ()
