"""Key rules: MLflow 3's, exactly (mlflow.utils.validation on a POSIX system)."""

from __future__ import annotations

import pytest

from tracking import validation
from tracking.errors import InvalidParameterError

ACCEPTED = [
    pytest.param("acc", id="plain"),
    pytest.param("train:loss", id="colon"),
    pytest.param("eval/acc", id="slash"),
    pytest.param("lr rate-1.5_x", id="space-dash-dot-underscore"),
    pytest.param("épsilon", id="unicode-word"),
    pytest.param("a.b", id="inner-dot"),
    pytest.param(".hidden", id="leading-dot"),
]
REFUSED = [
    pytest.param("", "must not be empty", id="empty"),
    pytest.param("a,b", "may only contain", id="comma"),
    pytest.param("a\nb", "may only contain", id="newline"),
    pytest.param("acc\n", "may only contain", id="trailing-newline"),
    pytest.param("/abs", "resolve to", id="leading-slash"),
    pytest.param("a/", "resolve to", id="trailing-slash"),
    pytest.param("a//b", "resolve to", id="double-slash"),
    pytest.param("./a", "resolve to", id="dot-segment"),
    pytest.param("a/../b", "resolve to", id="dotdot-inside"),
    pytest.param("..a", "resolve to", id="leading-dotdot"),
    pytest.param(".", "resolve to", id="dot"),
    pytest.param("x" * 251, "limit is 250", id="too-long"),
]


class TestKeys:
    @pytest.mark.parametrize("key", ACCEPTED)
    @pytest.mark.parametrize("kind", ["metric", "param", "tag"])
    def test_accepted(self, key: str, kind: str) -> None:
        assert validation.validate_key(key, kind) == key

    @pytest.mark.parametrize(("key", "fragment"), REFUSED)
    def test_refused_naming_the_rule(self, key: str, fragment: str) -> None:
        with pytest.raises(InvalidParameterError, match="metric key") as info:
            validation.validate_key(key, "metric")
        assert fragment in str(info.value)
