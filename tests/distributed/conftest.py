"""One local Ray cluster for every ``ray`` test of the session: two CPUs, no dashboard, loopback only."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def ray_address() -> Iterator[str]:
    """Start the cluster (a few seconds) and yield its address; shut it down at the end."""
    with pytest.MonkeyPatch.context() as patch:
        # Ray then advertises and binds 127.0.0.1 instead of the machine's address: set before Ray is
        # imported (it reads it then); the cluster's processes and the tests' subprocesses inherit it
        patch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        ray = pytest.importorskip("ray", reason="make test-ray installs Ray")
        context = ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
        try:
            yield str(context.address_info["address"])
        finally:
            ray.shutdown()
