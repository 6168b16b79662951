"""Conformance cases for data sets and run inputs (``log_inputs``)."""

from __future__ import annotations

from typing import Any

import pytest

from tracking.client import TrackingClient
from tracking.entities import Dataset, DatasetInput, InputTag
from tracking.errors import InvalidParameterError, InvalidStateError, RunNotFoundError

__all__ = ["InputSuite"]

TRAIN = Dataset("churn-train", "9f86d081", "local", '{"uri": "/data/train.csv"}', '{"x": 1}')
EVAL = Dataset("churn-eval", "1b4f0e98", "s3", '{"uri": "s3://b/eval.csv"}', None, '{"rows": 9}')


def _use(dataset: Dataset, context: str) -> DatasetInput:
    return DatasetInput(dataset, (InputTag("mlflow.data.context", context),))


class InputSuite:
    """A run's data sets: stored once, read back with the run and in searches."""

    def test_inputs_round_trip_in_order(self, client: TrackingClient) -> None:
        run_id = client.create_run("0").info.run_id
        assert client.get_run(run_id).inputs.dataset_inputs == ()
        client.log_inputs(run_id, [_use(TRAIN, "training"), _use(EVAL, "evaluation")])
        inputs = client.get_run(run_id).inputs.dataset_inputs
        assert [i.dataset for i in inputs] == [TRAIN, EVAL]
        assert [dict(i.tags) for i in inputs] == [
            {"mlflow.data.context": "training"},
            {"mlflow.data.context": "evaluation"},
        ]

    def test_logging_again_keeps_one_input(self, client: TrackingClient) -> None:
        run_id = client.create_run("0").info.run_id
        client.log_inputs(run_id, [_use(TRAIN, "training")])
        client.log_inputs(run_id, [_use(TRAIN, "other"), TRAIN])
        client.log_inputs(run_id, [EVAL])
        inputs = client.get_run(run_id).inputs.dataset_inputs
        assert [i.dataset.name for i in inputs] == ["churn-train", "churn-eval"]
        assert dict(inputs[0].tags) == {"mlflow.data.context": "training"}
        assert inputs[1].tags == ()

    def test_runs_share_a_data_set(self, client: TrackingClient) -> None:
        exp = client.create_experiment("inputs-shared")
        first = client.create_run(exp).info.run_id
        second = client.create_run(exp).info.run_id
        client.log_inputs(first, [_use(TRAIN, "training")])
        client.log_inputs(second, [_use(TRAIN, "evaluation")])
        found = {r.info.run_id: r for r in client.search_runs([exp])}
        assert found[first].inputs.dataset_inputs[0].dataset == TRAIN
        assert dict(found[second].inputs.dataset_inputs[0].tags) == {
            "mlflow.data.context": "evaluation"
        }

    def test_unknown_and_deleted_runs_are_refused(self, client: TrackingClient) -> None:
        with pytest.raises(RunNotFoundError):
            client.log_inputs("0" * 32, [TRAIN])
        run_id = client.create_run("0").info.run_id
        client.delete_run(run_id)
        with pytest.raises(InvalidStateError):
            client.log_inputs(run_id, [TRAIN])

    @pytest.mark.parametrize(
        ("bad", "fragment"),
        [
            pytest.param(
                Dataset("", "d", "local", "s"), "datasets[1].dataset.name", id="empty-name"
            ),
            pytest.param(Dataset("n" * 501, "d", "local", "s"), "limit is 500", id="long-name"),
            pytest.param(Dataset("n", "d" * 37, "local", "s"), "limit is 36", id="long-digest"),
            pytest.param(Dataset("n", "d", "local", ""), "dataset.source", id="empty-source"),
            pytest.param(
                DatasetInput(Dataset("n", "d", "l", "s"), (InputTag("k", "v" * 501),)),
                "limit is 500",
                id="long-tag-value",
            ),
            pytest.param("not a dataset", "must be a DatasetInput", id="wrong-type"),
        ],
    )
    def test_bad_inputs_are_refused_and_nothing_written(
        self, client: TrackingClient, bad: Any, fragment: str
    ) -> None:
        run_id = client.create_run("0").info.run_id
        with pytest.raises(InvalidParameterError) as info:
            client.log_inputs(run_id, [TRAIN, bad])
        assert fragment in str(info.value)
        assert client.get_run(run_id).inputs.dataset_inputs == ()
