"""A run with 10,000 tags of 5,000 characters (within the limits): its page stays small,
and ten parallel views leave the server process near its idle size. RSS is read from
``/proc``; the figures are printed (``pytest -s``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _server_support import ServerProcess, start_server

from tracking import TrackingClient
from tracking.entities import RunTag
from tracking.validation import MAX_BATCH_TAGS, MAX_TAG_VALUE_LENGTH

TAGS = 10_000
VIEWS = 10
#: How much a server may keep after the views (a generous bound: the allocator keeps some).
KEPT_MB = 100
#: The largest run page (the issue saw 50 MB).
PAGE_BYTES = 2_000_000


def rss_mb(pid: int) -> float:
    """The resident set size of process ``pid``, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc")
    with start_server(tmp_path_factory.mktemp("ui-memory")) as found:
        yield found


def test_a_run_of_many_long_tags_leaves_the_server_near_its_idle_size(
    server: ServerProcess,
) -> None:
    client = TrackingClient(server.url)
    eid = client.create_experiment("many-long-tags")
    rid = client.create_run(eid, run_name="tagged").info.run_id
    value = "t" * MAX_TAG_VALUE_LENGTH
    for start in range(0, TAGS, MAX_BATCH_TAGS):
        batch = [RunTag(f"tag{i:05d}", value) for i in range(start, start + MAX_BATCH_TAGS)]
        client.log_batch(rid, tags=batch)
    url = f"{server.url}/experiments/{eid}/runs/{rid}"
    pid = server.process.pid

    first = httpx.get(url, timeout=300)  # templates compiled, caches warm
    assert first.status_code == 200
    assert f"Tags ({TAGS:,})" in first.text or f"Tags ({TAGS})" in first.text
    time.sleep(1)
    idle = rss_mb(pid)

    sizes: list[int] = []
    peak = idle
    threads = [
        threading.Thread(target=lambda: sizes.append(len(httpx.get(url, timeout=300).content)))
        for _ in range(VIEWS)
    ]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        peak = max(peak, rss_mb(pid))
        time.sleep(0.02)
    for t in threads:
        t.join()
    time.sleep(2)
    after = rss_mb(pid)
    print(
        f"\nrun page of {TAGS:,} tags x {MAX_TAG_VALUE_LENGTH:,} chars: {max(sizes):,} bytes; "
        f"server RSS idle {idle:.0f} MiB, peak during {VIEWS} parallel views {peak:.0f} MiB, "
        f"2 s after {after:.0f} MiB (+{after - idle:.0f} MiB)"
    )
    assert len(sizes) == VIEWS
    assert max(sizes) < PAGE_BYTES
    assert after - idle < KEPT_MB
