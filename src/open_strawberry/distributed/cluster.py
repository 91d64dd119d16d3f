"""Which Ray cluster a run uses, and the connection to it: :func:`cluster_target` (checked
before anything is touched) and :func:`open_cluster`.

- **An address** (``--ray ADDRESS``, ``address=``; else ``RAY_ADDRESS`` when set): that cluster,
  and only it. Its form is checked before Ray is imported: ``HOST:PORT`` (the head node's GCS
  port, which ``ray start --head`` prints), ``ray://HOST[:PORT]`` (Ray Client, port 10001 by
  default), or ``auto`` (the cluster ``ray start`` started on this machine). A ``HOST:PORT`` must
  accept a TCP connection within :data:`CONNECT_TIMEOUT_S` before Ray is asked to join it, so a
  wrong host or port fails in seconds with one line instead of Ray's minutes of retries.
- **No address** (or ``local``): a cluster of the run's own, started for it and stopped after
  it, never one found running on this machine (another job's cluster would run our tasks with
  its settings, and end them when it ends). It listens on 127.0.0.1 only, so no other machine
  can reach it; Ray from 2.59 on (the ``ray`` extra's floor) also makes it require a token
  (``~/.ray/auth_token``) from the processes of this machine, unless ``RAY_AUTH_MODE`` says
  otherwise. Its dashboard is not started.

Ray is imported here, when a run starts, and only then.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any, cast

import anyio

from open_strawberry.errors import ConfigurationError

__all__ = ["CONNECT_TIMEOUT_S", "INSTALL_HINT", "ClusterTarget", "cluster_target", "import_ray", "open_cluster",
           "starts_local_cluster"]

INSTALL_HINT = "pip install -e '.[ray]'"
CONNECT_TIMEOUT_S = 5.0  # for the TCP check of a HOST:PORT before Ray joins it
LOOPBACK = "127.0.0.1"
_CLIENT_PORT = 10001  # Ray Client's default
# Ray reads this when it is imported: "0" keeps a node it starts on 127.0.0.1 (else it takes the
# machine's address and its servers listen on every interface)
_LOOPBACK_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
_PORT = re.compile(r"[0-9]{1,5}")
_HOST = re.compile(r"\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.\-_]*[A-Za-z0-9])?")


def import_ray() -> ModuleType:
    """The ``ray`` module, or a ConfigurationError that says how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigurationError(f"running on Ray needs the ray package: {INSTALL_HINT}") from None
    return cast(ModuleType, ray)


@dataclass(frozen=True)
class ClusterTarget:
    """The cluster a run asked for: ``address`` (``None``: a local cluster of its own), where the
    address came from (``--ray`` or ``RAY_ADDRESS``), and its host and port when it names them."""

    address: str | None
    source: str = "--ray"
    host: str | None = None
    port: int | None = None

    @property
    def described(self) -> str:
        """For the manifest: the address, or ``local`` for a cluster of the run's own."""
        return self.address or "local"


def cluster_target(address: str | None, environ: dict[str, str] | None = None) -> ClusterTarget:
    """The cluster ``address`` names (``None`` or empty: ``RAY_ADDRESS`` from ``environ``,
    default the process's, else a local one); ConfigurationError, one line naming ``--ray``
    (or ``RAY_ADDRESS``), for an address of no form Ray knows. Imports nothing."""
    source = "--ray"
    if not address:
        address, source = (environ if environ is not None else os.environ).get("RAY_ADDRESS") or None, "RAY_ADDRESS"
    if address is None or address.strip() == "local":
        return ClusterTarget(None)
    address = address.strip()
    if address == "auto":
        return ClusterTarget(address, source)
    client = address.startswith("ray://")
    host, colon, port = address.removeprefix("ray://").rstrip("/").rpartition(":")
    if client and not (colon and _PORT.fullmatch(port)) and _HOST.fullmatch(address[len("ray://"):].rstrip("/")):
        host, port = address[len("ray://"):].rstrip("/"), str(_CLIENT_PORT)
    if not (_HOST.fullmatch(host) and _PORT.fullmatch(port) and 0 < int(port) < 65536):
        raise ConfigurationError(
            f"{source} {address!r} is not a Ray address: give HOST:PORT (the head node's GCS port, e.g. "
            "head-node:6379), ray://HOST:PORT (Ray Client) or auto; with no address a local cluster is started")
    return ClusterTarget(address, source, host.strip("[]"), int(port))


def starts_local_cluster(target: ClusterTarget) -> bool:
    """Whether :func:`open_cluster` would start a cluster on this machine for ``target`` (no
    address, and this process not connected already). Imports nothing."""
    ray = sys.modules.get("ray")
    return target.address is None and not (ray is not None and ray.is_initialized())


@contextlib.asynccontextmanager
async def open_cluster(target: ClusterTarget) -> AsyncIterator[ModuleType]:
    """The ``ray`` module, connected to ``target`` (see the module) unless this process is
    connected already (that connection is used and left open). A connection made here is shut
    down when the block ends, and a cluster started here with it. ConfigurationError, one line,
    when the cluster cannot be reached or started. Blocks while Ray starts (seconds)."""
    if target.host is not None:
        await _check_reachable(target)
    with _loopback_only(target.address is None):
        ray = import_ray()
        mine = not ray.is_initialized()
        if mine:
            _start_or_join(ray, target)
    try:
        yield ray
    finally:
        if mine:
            ray.shutdown()


async def _check_reachable(target: ClusterTarget) -> None:
    assert target.host is not None and target.port is not None
    try:
        with anyio.fail_after(CONNECT_TIMEOUT_S):
            stream = await anyio.connect_tcp(target.host, target.port)
    except (OSError, TimeoutError) as exc:
        cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc  # anyio's: each attempt's error
        reason = "no answer" if isinstance(exc, TimeoutError) else (
            os.strerror(cause.errno) if cause.errno and cause.errno > 0 else cause.strerror or str(cause)).lower()
        raise ConfigurationError(
            f"{target.source} {target.address}: no Ray cluster answers there ({reason}, within "
            f"{CONNECT_TIMEOUT_S:g} s); is it running (ray start --head), and is that its head node's port?") from None
    await stream.aclose()


@contextlib.contextmanager
def _loopback_only(local: bool) -> Iterator[None]:
    """For a local cluster: Ray's switch to 127.0.0.1 set while Ray is imported and starts (its
    processes keep it), as it was afterwards."""
    if not local:
        yield
        return
    before = os.environ.get(_LOOPBACK_SWITCH)
    os.environ[_LOOPBACK_SWITCH] = "0"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(_LOOPBACK_SWITCH, None)
        else:
            os.environ[_LOOPBACK_SWITCH] = before


def _start_or_join(ray: ModuleType, target: ClusterTarget) -> None:
    try:
        if target.address is None:
            context: Any = ray.init(address="local", _node_ip_address=LOOPBACK, include_dashboard=False)
        else:
            context = ray.init(address=target.address)
    except Exception as exc:  # Ray's own errors, of many types: one line at the boundary
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "no reason given"
        what = "start a local Ray cluster" if target.address is None else f"join the Ray cluster at {target.address}"
        raise ConfigurationError(f"{target.source if target.address else 'Ray'}: cannot {what} "
                                 f"({type(exc).__name__}: {first})") from None
    if target.address is None and context.address_info.get("node_ip_address") != LOOPBACK:
        ray.shutdown()  # Ray was imported before the switch could be set: its node would listen everywhere
        raise ConfigurationError(
            f"Ray was imported before the run and would start its local cluster on every interface: set "
            f"{_LOOPBACK_SWITCH}=0 before importing it, or start Ray yourself and pass its address (--ray)")
