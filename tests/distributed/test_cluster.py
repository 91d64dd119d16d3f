"""Which cluster a run asks for: the forms of an address, checked before Ray is imported."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from open_strawberry.distributed.cluster import ClusterTarget, cluster_target
from open_strawberry.errors import ConfigurationError


@pytest.mark.parametrize(("address", "expected"), [
    ("head-node:6379", ClusterTarget("head-node:6379", "--ray", "head-node", 6379)),
    ("10.0.0.5:6379", ClusterTarget("10.0.0.5:6379", "--ray", "10.0.0.5", 6379)),
    ("[::1]:6379", ClusterTarget("[::1]:6379", "--ray", "::1", 6379)),
    ("ray://head:10002", ClusterTarget("ray://head:10002", "--ray", "head", 10002)),
    ("ray://head", ClusterTarget("ray://head", "--ray", "head", 10001)),
    ("auto", ClusterTarget("auto", "--ray")),
    ("local", ClusterTarget(None)),
])
def test_the_forms_ray_knows_name_their_host_and_port(address: str, expected: ClusterTarget) -> None:
    assert cluster_target(address, environ={}) == expected


def test_no_address_is_ray_address_when_set_else_a_local_cluster() -> None:
    assert cluster_target(None, environ={"RAY_ADDRESS": "head:6379"}) == ClusterTarget(
        "head:6379", "RAY_ADDRESS", "head", 6379)
    assert cluster_target("", environ={}) == ClusterTarget(None)
    assert cluster_target(None, environ={"RAY_ADDRESS": ""}).described == "local"
    assert cluster_target("local", environ={"RAY_ADDRESS": "head:6379"}) == ClusterTarget(None)


@given(address=st.text(max_size=40))
def test_any_address_is_a_target_or_one_line_naming_its_source(address: str) -> None:
    try:
        target = cluster_target(address, environ={})
    except ConfigurationError as exc:
        assert str(exc).startswith(f"--ray {address.strip()!r} is not a Ray address") and "\n" not in str(exc)
        return
    assert target.address is None or (target.address == "auto") or (
        target.host and target.port is not None and 0 < target.port < 65536)


@pytest.mark.parametrize("address", ["head:²", "head:٣٣", "ray://head:²", "head:0", "head:123456", "head:"])
def test_a_port_is_ascii_digits_in_range(address: str) -> None:
    with pytest.raises(ConfigurationError, match="is not a Ray address"):
        cluster_target(address, environ={})
