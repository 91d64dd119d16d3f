"""A stand-in for the ``ray`` module, with just what the driver calls: tasks run at once on
threads of this process (their object references are futures), an actor is the plain object
and its method calls are answered on the spot. It runs the driver's steps without a cluster;
the tests marked ``ray`` run them on a real one."""

from __future__ import annotations

import concurrent.futures
import os
import types
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any


class RayError(Exception):
    pass


class RayTaskError(RayError):
    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"the task raised {type(cause).__name__}: {cause}")
        self.cause = cause


class TaskCancelledError(RayError):
    pass


def _done(value: Any) -> Future[Any]:
    future: Future[Any] = Future()
    future.set_result(value)
    return future


def _resolved(args: tuple[Any, ...]) -> list[Any]:
    return [arg.result() if isinstance(arg, Future) else arg for arg in args]  # Ray passes values, not refs


class _Method:
    def __init__(self, method: Callable[..., Any]) -> None:
        self.method = method

    def remote(self, *args: Any) -> Future[Any]:
        return _done(self.method(*_resolved(args)))


class _Actor:
    def __init__(self, instance: Any) -> None:
        self.instance = instance

    def __getattr__(self, name: str) -> _Method:
        return _Method(getattr(self.instance, name))


class _Remote:
    def __init__(self, ray: FakeRay, target: Any) -> None:
        self.ray, self.target = ray, target

    def remote(self, *args: Any) -> Any:
        if isinstance(self.target, type):
            return _Actor(self.target(*_resolved(args)))
        self.ray.tasks += 1
        return self.ray.pool.submit(self.target, *_resolved(args))


class FakeRay(types.ModuleType):
    """``sys.modules["ray"]`` for a test; ``tasks`` counts the tasks started."""

    __version__ = "0.0-fake"
    exceptions = types.SimpleNamespace(RayError=RayError, RayTaskError=RayTaskError,
                                       TaskCancelledError=TaskCancelledError)

    def __init__(self, cpus: int = 2, node_ip_address: str = "127.0.0.1") -> None:
        super().__init__("ray")
        self.cpus = cpus
        self.node_ip_address = node_ip_address  # what a started node says it listens on
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=cpus)
        self.initialized = False
        self.tasks = 0
        self.inits: list[dict[str, Any]] = []  # each init's arguments, and Ray's loopback switch then

    def is_initialized(self) -> bool:
        return self.initialized

    def init(self, address: str | None = None, **options: Any) -> types.SimpleNamespace:
        self.initialized = True
        self.inits.append({"address": address, **options,
                           "switch": os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")})
        return types.SimpleNamespace(address_info={"address": "127.0.0.1:6379",
                                                   "node_ip_address": self.node_ip_address})

    def shutdown(self) -> None:
        self.initialized = False
        self.pool.shutdown(wait=True)

    def cluster_resources(self) -> dict[str, float]:
        return {"CPU": float(self.cpus)}

    def remote(self, **_: Any) -> Callable[[Any], _Remote]:
        return lambda target: _Remote(self, target)

    def put(self, value: Any) -> Future[Any]:
        return _done(value)

    def get(self, ref: Future[Any]) -> Any:
        try:
            return ref.result()
        except concurrent.futures.CancelledError:
            raise TaskCancelledError("cancelled") from None
        except Exception as exc:
            raise RayTaskError(exc) from None

    def wait(self, refs: list[Future[Any]], *, num_returns: int = 1,
             timeout: float | None = None) -> tuple[list[Future[Any]], list[Future[Any]]]:
        when = concurrent.futures.FIRST_COMPLETED if num_returns == 1 else concurrent.futures.ALL_COMPLETED
        done, _ = concurrent.futures.wait(refs, timeout=timeout, return_when=when)
        ready = [ref for ref in refs if ref in done][:num_returns]
        return ready, [ref for ref in refs if ref not in ready]

    def cancel(self, ref: Future[Any], *, force: bool = False) -> None:
        ref.cancel()

    def kill(self, actor: Any) -> None:
        pass
