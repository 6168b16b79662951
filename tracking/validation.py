"""Argument checks with MLflow's limits; every failure names the field and the rule.

These run in :class:`~tracking.client.TrackingClient` before anything is
written, so a rejected call or batch writes nothing, whatever the store.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Sequence
from numbers import Real
from typing import Any, TypeVar

from tracking.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag, metric_of
from tracking.errors import InvalidParameterError

__all__ = [
    "MAX_BATCH_METRICS",
    "MAX_BATCH_PARAMS",
    "MAX_BATCH_TAGS",
    "MAX_ENTITY_KEY_LENGTH",
    "MAX_EXPERIMENT_NAME_LENGTH",
    "MAX_PARAM_VALUE_LENGTH",
    "MAX_RUN_NAME_LENGTH",
    "MAX_SEARCH_RESULTS",
    "MAX_TAG_VALUE_LENGTH",
    "plain_columns",
    "plain_metrics",
    "validate_batch",
    "validate_dataset_inputs",
    "validate_experiment_name",
    "validate_key",
    "validate_max_results",
    "validate_metric",
    "validate_metric_columns",
    "validate_param",
    "validate_records",
    "validate_run_id",
    "validate_run_name",
    "validate_tag",
]

MAX_ENTITY_KEY_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6000
MAX_TAG_VALUE_LENGTH = 5000
MAX_EXPERIMENT_NAME_LENGTH = 256
MAX_RUN_NAME_LENGTH = 250
MAX_BATCH_METRICS = 1000
MAX_BATCH_PARAMS = 100
MAX_BATCH_TAGS = 100
MAX_SEARCH_RESULTS = 50000
MAX_RUN_ID_LENGTH = 32
_NT = TypeVar("_NT", Metric, Param, RunTag)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

# MLflow 3's rule (mlflow.utils.validation): word characters, "/", ".", "-", " " and ":".
_KEY_RE = re.compile(r"[/\w.\- :]+")
_RUN_ID_RE = re.compile(r"^[A-Za-z0-9_\-]+$")
# Keys are checked once per process: log_batch sees the same few keys thousands of times.
_GOOD_KEYS: set[str] = set()


def validate_key(key: object, kind: str) -> str:
    """A metric, param or tag key, by MLflow 3's rules: 1-250 of word characters, ``.``,
    ``-``, ``/``, ``:`` and space, and a normal relative path (no ``..``, no leading,
    trailing or doubled ``/``, no ``.`` segment), since keys may become file names."""
    if type(key) is str and key in _GOOD_KEYS:
        return key
    if not isinstance(key, str):
        raise InvalidParameterError(f"{kind} key must be a string, got {type(key).__name__}")
    if not key:
        raise InvalidParameterError(f"{kind} key must not be empty")
    if len(key) > MAX_ENTITY_KEY_LENGTH:
        raise InvalidParameterError(
            f"{kind} key {key[:40]!r}... is {len(key)} characters long; "
            f"the limit is {MAX_ENTITY_KEY_LENGTH}"
        )
    if not _KEY_RE.fullmatch(key):
        raise InvalidParameterError(
            f"invalid {kind} key {key!r}: keys may only contain letters, digits, "
            "underscores (_), dashes (-), periods (.), spaces ( ), colons (:) and slashes (/)"
        )
    normal = posixpath.normpath(key)
    if normal != key or normal == "." or normal.startswith(("..", "/")):
        raise InvalidParameterError(
            f"invalid {kind} key {key!r}: keys may be used as file names and must not "
            f"resolve to another name as such; this one would resolve to {normal!r}"
        )
    if len(_GOOD_KEYS) < 100_000:
        _GOOD_KEYS.add(key)
    return key


def _int64(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParameterError(
            f"{field} must be an integer, got {type(value).__name__} {value!r}"
        )
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise InvalidParameterError(f"{field} {value} does not fit in a 64-bit integer")
    return value


def validate_metric(metric: Metric) -> Metric:
    """A metric point: numeric value (bool refused; NaN and inf kept), int64 step and time."""
    key, value, timestamp, step = metric
    validate_key(key, "metric")
    if type(value) is not float:
        if isinstance(value, bool) or not isinstance(value, Real):
            raise InvalidParameterError(
                f"metric {key!r} value must be a number, got {type(value).__name__} {value!r}"
            )
        try:
            value = float(value)
        except OverflowError:
            raise InvalidParameterError(
                f"metric {key!r} value {value!r} is too large for a 64-bit float"
            ) from None
        metric = Metric(key, value, timestamp, step)
    if type(timestamp) is not int or not _INT64_MIN <= timestamp <= _INT64_MAX:
        _int64(timestamp, f"metric {key!r} timestamp")
    if type(step) is not int or not _INT64_MIN <= step <= _INT64_MAX:
        _int64(step, f"metric {key!r} step")
    return metric


def validate_param(param: Param) -> Param:
    """A param: valid key, value a string of at most 6000 characters."""
    return _validate_pair(param, "param", MAX_PARAM_VALUE_LENGTH)


def validate_tag(tag: RunTag) -> RunTag:
    """A tag: valid key, value a string of at most 5000 characters."""
    return _validate_pair(tag, "tag", MAX_TAG_VALUE_LENGTH)


_Pair = TypeVar("_Pair", Param, RunTag)


def _validate_pair(pair: _Pair, kind: str, limit: int) -> _Pair:
    key, value = pair
    validate_key(key, kind)
    if not isinstance(value, str):
        value = str(value)
        pair = type(pair)(key, value)
    if len(value) > limit:
        raise InvalidParameterError(
            f"{kind} {key!r} value is {len(value)} characters long; the limit is {limit}"
        )
    return pair


def _check_count(items: Sequence[object], limit: int, kind: str) -> None:
    if len(items) > limit:
        raise InvalidParameterError(f"a batch may hold at most {limit} {kind}; got {len(items)}")


def validate_batch(
    metrics: Iterable[Metric], params: Iterable[Param], tags: Iterable[RunTag]
) -> tuple[list[Metric], list[Param], list[RunTag]]:
    """Checks a whole batch before anything is written (limits: 1000/100/100)."""
    metrics, params, tags = list(metrics), list(params), list(tags)
    _check_count(metrics, MAX_BATCH_METRICS, "metrics")
    _check_count(params, MAX_BATCH_PARAMS, "params")
    _check_count(tags, MAX_BATCH_TAGS, "tags")
    return validate_records(metrics, params, tags)


def validate_records(
    metrics: Sequence[Metric], params: Sequence[Param], tags: Sequence[RunTag]
) -> tuple[list[Metric], list[Param], list[RunTag]]:
    """Checks every record of a call, of any size: each one, and no param twice with
    different values (:func:`validate_batch` adds the batch limits)."""
    checked_params = [validate_param(_as(p, Param, "param")) for p in params]
    seen: dict[str, str] = {}
    for key, value in checked_params:
        if seen.setdefault(key, value) != value:
            raise InvalidParameterError(
                f"param {key!r} appears twice with different values ({seen[key]!r} and {value!r})"
            )
    return (
        _validate_metrics(metrics),
        checked_params,
        [validate_tag(_as(t, RunTag, "tag")) for t in tags],
    )


_FLOAT_ONLY = frozenset((float,))
_INT_ONLY = frozenset((int,))


def plain_metrics(metrics: Sequence[object]) -> bool:
    """Whether every item is a :class:`Metric` with a ``str`` key, a ``float`` value
    and ``int`` step and timestamp within 64 bits (exact types: no bool, no str).

    Checked column-wise with C-level builtins, a fifth of the cost of
    :func:`validate_metric` per point, which matters at 1000 points a call.
    Keys are not checked here.
    """
    return _plain_keys(metrics) is not None


def _plain_keys(metrics: Sequence[object]) -> Sequence[str] | None:
    """The keys of :func:`plain_metrics`, a column; ``None`` if they are not plain."""
    if not metrics or frozenset(map(type, metrics)) != _METRIC_ONLY:
        return None
    columns = tuple(zip(*metrics, strict=True))
    return columns[0] if plain_columns(*columns) else None


def plain_columns(
    keys: Sequence[Any],
    values: Sequence[Any],
    timestamps: Sequence[Any],
    steps: Sequence[Any],
) -> bool:
    """:func:`plain_metrics` for points given as columns (of equal, non-zero length)."""
    return (
        frozenset(map(type, keys)) == _STR_ONLY
        and frozenset(map(type, values)) == _FLOAT_ONLY
        and frozenset(map(type, timestamps)) == _INT_ONLY
        and frozenset(map(type, steps)) == _INT_ONLY
        and min(timestamps) >= _INT64_MIN
        and max(timestamps) <= _INT64_MAX
        and min(steps) >= _INT64_MIN
        and max(steps) <= _INT64_MAX
    )


def validate_metric_columns(
    keys: Sequence[object],
    values: Sequence[object],
    timestamps: Sequence[object],
    steps: Sequence[object],
) -> list[Metric]:
    """Metric points given as four equally long columns: point ``i`` is
    ``(keys[i], values[i], timestamps[i], steps[i])``; the checks and limit of
    :func:`validate_batch`, run column by column."""
    lengths = {"key": len(keys), "value": len(values), "timestamp": len(timestamps)}
    lengths["step"] = len(steps)
    if len(set(lengths.values())) > 1:
        raise InvalidParameterError(
            "metric columns must be equally long; got "
            + ", ".join(f"{count} {name}s" for name, count in lengths.items())
        )
    _check_count(keys, MAX_BATCH_METRICS, "metrics")
    if not keys:
        return []
    points = zip(keys, values, timestamps, steps, strict=True)
    if not plain_columns(keys, values, timestamps, steps):
        return [validate_metric(Metric._make(point)) for point in points]
    for key in dict.fromkeys(keys):
        validate_key(key, "metric")
    return list(map(metric_of, points))


_METRIC_ONLY = frozenset((Metric,))
_STR_ONLY = frozenset((str,))
_FLOAT_ONLY = frozenset((float,))
_INT_ONLY = frozenset((int,))


def _validate_metrics(metrics: Sequence[object]) -> list[Metric]:
    keys = _plain_keys(metrics)
    if keys is not None:
        for key in dict.fromkeys(keys):
            validate_key(key, "metric")
        return list(metrics)  # type: ignore[arg-type]
    return [validate_metric(_as(m, Metric, "metric")) for m in metrics]


def _as(item: object, cls: type[_NT], kind: str) -> _NT:
    if isinstance(item, cls):
        return item
    fields: tuple[str, ...] = cls._fields
    try:
        if isinstance(item, dict):
            return cls(*(item[f] for f in fields))
        if isinstance(item, tuple) and len(item) == len(fields):
            return cls(*item)
        return cls(*(getattr(item, f) for f in fields))
    except (KeyError, AttributeError, TypeError):
        raise InvalidParameterError(
            f"each {kind} in a batch must be a {cls.__name__} (fields: {', '.join(fields)}), "
            f"got {item!r}"
        ) from None


def validate_run_id(run_id: object, field: str = "run_id") -> str:
    """A run id: 1-32 letters, digits, ``_`` or ``-`` (trackflow's ids are 32 hex digits)."""
    if not isinstance(run_id, str) or not run_id:
        raise InvalidParameterError(f"{field} must be a non-empty string, got {run_id!r}")
    if len(run_id) > MAX_RUN_ID_LENGTH or not _RUN_ID_RE.match(run_id):
        raise InvalidParameterError(
            f"invalid {field} {run_id[:80]!r}: expected 1 to {MAX_RUN_ID_LENGTH} letters, digits, "
            "'_' or '-' (such as the 32 hex digits of tracking.run_id_for(...))"
        )
    return run_id


def validate_run_name(name: object) -> str:
    """A run name: a string of at most 250 characters."""
    if not isinstance(name, str):
        raise InvalidParameterError(f"run_name must be a string, got {type(name).__name__}")
    if len(name) > MAX_RUN_NAME_LENGTH:
        raise InvalidParameterError(
            f"run_name is {len(name)} characters long; the limit is {MAX_RUN_NAME_LENGTH}"
        )
    return name


def validate_experiment_name(name: object) -> str:
    """An experiment name: a non-empty string of at most 256 characters."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidParameterError(f"experiment name must be a non-empty string, got {name!r}")
    if len(name) > MAX_EXPERIMENT_NAME_LENGTH:
        raise InvalidParameterError(
            f"experiment name is {len(name)} characters long; "
            f"the limit is {MAX_EXPERIMENT_NAME_LENGTH}"
        )
    return name


def validate_max_results(max_results: object, limit: int = MAX_SEARCH_RESULTS) -> int:
    """``max_results`` of a search: an integer from 1 to ``limit``."""
    if isinstance(max_results, bool) or not isinstance(max_results, int):
        raise InvalidParameterError(f"max_results must be an integer, got {max_results!r}")
    if not 1 <= max_results <= limit:
        raise InvalidParameterError(f"max_results must be between 1 and {limit}, got {max_results}")
    return max_results


#: MLflow's limits for data sets and their input tags (mlflow.utils.validation).
MAX_DATASETS_PER_BATCH = 1000
_DATASET_LIMITS = (
    ("name", 500, True),
    ("digest", 36, True),
    ("source_type", 36, True),
    ("source", 65535, True),
    ("schema", 1048575, False),
    ("profile", 16777215, False),
)
MAX_INPUT_TAG_KEY_LENGTH = 255
MAX_INPUT_TAG_VALUE_LENGTH = 500


def validate_dataset_inputs(inputs: Sequence[object]) -> list[DatasetInput]:
    """Check data set inputs for ``log_inputs`` against MLflow's limits, naming the field."""
    if isinstance(inputs, str | bytes) or not isinstance(inputs, Sequence):
        raise InvalidParameterError(
            f"datasets must be a list of DatasetInput, got {type(inputs).__name__}"
        )
    _check_count(inputs, MAX_DATASETS_PER_BATCH, "dataset inputs")
    checked = []
    for i, item in enumerate(inputs):
        if isinstance(item, Dataset):
            item = DatasetInput(item)
        if not isinstance(item, DatasetInput) or not isinstance(item.dataset, Dataset):
            raise InvalidParameterError(
                f"datasets[{i}] must be a DatasetInput (or a Dataset), got {type(item).__name__}"
            )
        for field, limit, required in _DATASET_LIMITS:
            value = getattr(item.dataset, field)
            where = f"datasets[{i}].dataset.{field}"
            if value is None and not required:
                continue
            if not isinstance(value, str):
                raise InvalidParameterError(f"{where} must be a string, got {type(value).__name__}")
            if required and not value:
                raise InvalidParameterError(f"{where} must not be empty")
            if len(value) > limit:
                raise InvalidParameterError(
                    f"{where} is {len(value)} characters long; the limit is {limit}"
                )
        tags = []
        for j, tag in enumerate(item.tags):
            key, value = tag
            where = f"datasets[{i}].tags[{j}]"
            if not isinstance(key, str) or not key or len(key) > MAX_INPUT_TAG_KEY_LENGTH:
                raise InvalidParameterError(
                    f"{where}.key must be a string of 1 to {MAX_INPUT_TAG_KEY_LENGTH} "
                    f"characters, got {key!r:.80}"
                )
            text = value if isinstance(value, str) else str(value)
            if len(text) > MAX_INPUT_TAG_VALUE_LENGTH:
                raise InvalidParameterError(
                    f"{where}.value of tag {key!r} is {len(text)} characters long; the limit "
                    f"is {MAX_INPUT_TAG_VALUE_LENGTH}"
                )
            tags.append(InputTag(key, text))
        checked.append(DatasetInput(item.dataset, tuple(tags)))
    return checked
