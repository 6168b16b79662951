"""Readable run names such as ``brave-owl-417``, as MLflow gives unnamed runs."""

from __future__ import annotations

import random

__all__ = ["generate_run_name"]

_ADJECTIVES = (
    "able", "agile", "amber", "bold", "brave", "bright", "calm", "clever", "crisp", "curious",
    "daring", "eager", "fair", "fast", "fierce", "gentle", "glad", "grand", "happy", "keen",
    "kind", "lively", "lucky", "mellow", "merry", "nimble", "noble", "proud", "quick", "quiet",
    "rare", "sharp", "shy", "silent", "sleek", "smart", "steady", "sunny", "swift", "tidy",
    "vast", "warm", "wise", "witty", "young", "zesty",
)
_NOUNS = (
    "ant", "bat", "bear", "bee", "boar", "cat", "colt", "crab", "crow", "deer", "dove", "eel",
    "elk", "fawn", "finch", "fox", "frog", "gnat", "goat", "hare", "hawk", "hen", "jay", "koi",
    "lamb", "lark", "lion", "lynx", "mole", "moth", "mule", "newt", "owl", "ox", "panda", "pike",
    "ram", "seal", "shrew", "slug", "snail", "swan", "toad", "trout", "wasp", "wolf", "wren",
    "yak",
)


def generate_run_name() -> str:
    """A random ``adjective-animal-number`` name."""
    return f"{random.choice(_ADJECTIVES)}-{random.choice(_NOUNS)}-{random.randint(0, 999)}"
