"""A small, real model for the example pipelines: logistic regression in plain Python.

Data come from a seed (the example pipelines derive it from the logical date),
so a rerun of the same day trains on the same rows. Nothing here knows the
orchestrator or trackflow.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator, Sequence
from pathlib import Path

Row = tuple[list[float], int]

#: The true weights the data are drawn from (the model should find their signs).
TRUE_WEIGHTS = (1.5, -2.0, 0.75, 0.0)


def make_dataset(seed: int, rows: int = 600, noise: float = 0.8) -> list[Row]:
    """``rows`` labelled rows drawn around :data:`TRUE_WEIGHTS`, the same for a seed."""
    rng = random.Random(seed)
    data = []
    for _ in range(rows):
        x = [rng.gauss(0.0, 1.0) for _ in TRUE_WEIGHTS]
        margin = sum(w * v for w, v in zip(TRUE_WEIGHTS, x, strict=True)) + rng.gauss(0, noise)
        data.append((x, 1 if margin > 0 else 0))
    return data


def split(data: Sequence[Row], holdout: float = 0.25) -> tuple[list[Row], list[Row]]:
    """Train and hold-out rows (the last ``holdout`` share is held out)."""
    cut = int(len(data) * (1 - holdout))
    return list(data[:cut]), list(data[cut:])


def save_rows(data: Sequence[Row], path: Path) -> Path:
    """Write rows as JSON lines."""
    with open(path, "w") as out:
        for x, y in data:
            out.write(json.dumps({"x": x, "y": y}) + "\n")
    return path


def load_rows(path: str | Path) -> list[Row]:
    """Read rows written by :func:`save_rows`."""
    with open(path) as src:
        return [(row["x"], int(row["y"])) for row in map(json.loads, src)]


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def predict(weights: Sequence[float], bias: float, x: Sequence[float]) -> float:
    """P(y = 1 | x)."""
    return _sigmoid(sum(w * v for w, v in zip(weights, x, strict=True)) + bias)


def train(
    data: Sequence[Row], *, epochs: int = 20, lr: float = 0.5, l2: float = 0.0
) -> Iterator[tuple[int, float, list[float], float]]:
    """Full-batch gradient descent; yields ``(epoch, loss, weights, bias)`` per epoch."""
    width = len(data[0][0])
    weights, bias = [0.0] * width, 0.0
    for epoch in range(1, epochs + 1):
        grad_w, grad_b, loss = [0.0] * width, 0.0, 0.0
        for x, y in data:
            p = predict(weights, bias, x)
            loss -= math.log(max(p, 1e-12)) if y else math.log(max(1 - p, 1e-12))
            for i, v in enumerate(x):
                grad_w[i] += (p - y) * v
            grad_b += p - y
        n = len(data)
        weights = [w - lr * (g / n + l2 * w) for w, g in zip(weights, grad_w, strict=True)]
        bias -= lr * grad_b / n
        yield epoch, loss / n, list(weights), bias


def accuracy(weights: Sequence[float], bias: float, data: Sequence[Row]) -> float:
    """The share of rows classified right."""
    right = sum((predict(weights, bias, x) >= 0.5) == bool(y) for x, y in data)
    return right / len(data)


def save_model(weights: Sequence[float], bias: float, path: Path) -> Path:
    """Write the model as JSON."""
    path.write_text(json.dumps({"weights": list(weights), "bias": bias}))
    return path


def load_model(path: str | Path) -> tuple[list[float], float]:
    """Read a model written by :func:`save_model`."""
    model = json.loads(Path(path).read_text())
    return list(model["weights"]), float(model["bias"])
