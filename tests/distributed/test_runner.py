"""The driver without Ray: what it checks before starting Ray, and the message when Ray is missing."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from open_strawberry.cli import main
from open_strawberry.distributed import INSTALL_HINT, combine_progress, generate_on_ray, runner
from open_strawberry.errors import ConfigurationError
from open_strawberry.messages import record_decoder
from open_strawberry.mock import MockServer
from open_strawberry.pipeline import GenerateConfig, Progress, generate
from tests.distributed.fake_ray import FakeRay


@pytest.fixture
def no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError


def config(server: MockServer, tmp_path: Path, **options: Any) -> GenerateConfig:
    return GenerateConfig(**{"problems": "builtin:mixed:6", "model": f"mock:reasoner@{server.url}/v1",
                             "out": str(tmp_path / "traces.jsonl"), "max_traces": 4, **options})


async def test_without_ray_installed_the_error_says_how_to_install_it(
        no_ray: None, mock_server: MockServer, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"pip install -e '\.\[ray\]'"):
        await generate_on_ray(config(mock_server, tmp_path))
    assert INSTALL_HINT == "pip install -e '.[ray]'"


async def test_a_finished_run_is_not_started_again(no_ray: None, mock_server: MockServer, tmp_path: Path) -> None:
    await generate(config(mock_server, tmp_path))
    served = mock_server.requests
    summary = await generate_on_ray(config(mock_server, tmp_path))  # nothing to make: no Ray needed
    assert (summary.resumed, summary.written, summary.planned) == (6, 0, 6)
    assert mock_server.requests == served


async def test_options_are_checked_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="workers must be at least 1"):
        await generate_on_ray(GenerateConfig(problems="builtin:mixed:2", out=str(tmp_path / "t.jsonl")), workers=0)
    with pytest.raises(ConfigurationError, match="empty server URL"):
        await generate_on_ray(GenerateConfig(problems="builtin:mixed:2", model="vllm:q@http://a:1/v1,",
                                             out=str(tmp_path / "t.jsonl")))
    assert not (tmp_path / "t.jsonl").exists()


def test_the_ray_options_need_ray(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "builtin:mixed:2", "--out", str(tmp_path / "t.jsonl"), "--ray-workers", "2"]) == 1
    assert "--ray-workers needs --ray" in capsys.readouterr().err


def test_the_command_line_says_how_to_install_ray(no_ray: None, mock_server: MockServer, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["generate", "builtin:mixed:2", "--model", f"mock:reasoner@{mock_server.url}/v1",
                 "--out", str(tmp_path / "t.jsonl"), "--no-progress", "--ray"])
    assert code == 1
    assert "pip install -e '.[ray]'" in capsys.readouterr().err
    assert mock_server.requests == 0


async def test_a_local_cluster_is_not_started_for_a_server_nobody_can_reach(no_ray: None, tmp_path: Path) -> None:
    # no_ray: had the cluster been started first, the error would be Ray's install hint
    for model, verifier in [("vllm:q@http://127.0.0.1:9/v1", None), ("mock:reasoner@http://127.0.0.1:9/v1", None),
                            ("vllm:q@http://127.0.0.1:9/v1,http://127.0.0.1:9/v2", None)]:
        with pytest.raises(ConfigurationError, match=r"cannot reach the model server at http://127\.0\.0\.1:9"):
            await generate_on_ray(GenerateConfig(problems="builtin:mixed:2", model=model, verifier_model=verifier,
                                                 out=str(tmp_path / "t.jsonl")))
    assert [path async for path in anyio.Path(tmp_path).iterdir()] == []  # nothing touched


async def test_the_verifier_server_is_checked_too_and_a_cluster_elsewhere_is_not_second_guessed(
        no_ray: None, mock_server: MockServer, tmp_path: Path) -> None:
    model = f"mock:reasoner@{mock_server.url}/v1"
    with pytest.raises(ConfigurationError, match=r"cannot reach the model server at http://127\.0\.0\.1:9"):
        await generate_on_ray(GenerateConfig(problems="builtin:mixed:2", model=model, out=str(tmp_path / "t.jsonl"),
                                             verifier_model="vllm:q@http://127.0.0.1:9/v1"))
    # a cluster at an address may reach servers this machine cannot: only the cluster is checked
    with pytest.raises(ConfigurationError, match="no Ray cluster answers there"):
        await generate_on_ray(GenerateConfig(problems="builtin:mixed:2", model="vllm:q@http://127.0.0.1:9/v1",
                                             out=str(tmp_path / "u.jsonl")), address="127.0.0.1:6379")


def test_progress_of_the_shards_adds_up() -> None:
    def shard(done: int, resumed: int, correct: int, stopped: str | None = None) -> Progress:
        return Progress(total=10, resumed=resumed, done=done, correct=correct, graded=done, failed=0, in_flight=2,
                        turns=3 * done, elapsed_s=1.0, input_tokens=100, output_tokens=10, calls_in_flight=1,
                        rate_limited=1, retries=0, stopped=stopped)

    combined = combine_progress({0: shard(4, 0, 3), 1: shard(2, 3, 1, "AuthenticationError: no")}, total=20,
                                resumed=7, elapsed_s=2.0)
    assert (combined.total, combined.resumed, combined.done, combined.correct) == (20, 7, 9, 4)
    assert (combined.in_flight, combined.turns, combined.rate_limited) == (4, 18, 2)
    assert combined.stopped == "AuthenticationError: no" and combined.elapsed_s == 2.0


def lines_of(path: str) -> list[bytes]:
    return Path(path).read_bytes().splitlines(keepends=True)


RAY_MANIFEST_KEYS = {"command", "config", "problems", "resumed_records", "samples", "started_at", "versions", "ray",
                     "finished_at", "summary"}


async def test_the_manifest_of_a_ray_run_keeps_its_keys(no_ray: None, mock_server: MockServer,
                                                        tmp_path: Path) -> None:
    await generate(config(mock_server, tmp_path))
    summary = await generate_on_ray(config(mock_server, tmp_path), command=["generate", "--ray"])
    manifest = json.loads(b"".join(lines_of(summary.manifest)))
    assert set(manifest) == RAY_MANIFEST_KEYS
    assert set(manifest["ray"]) == {"address", "workers", "shards", "servers", "run_id", "budgets"}
    assert {"python", "ray", "open-strawberry", "anyio", "aiohttp", "msgspec"} <= set(manifest["versions"])
    assert manifest["versions"]["ray"] == "not used" and manifest["summary"]["resumed"] == 6


async def test_records_merged_from_a_killed_run_count_as_written(no_ray: None, mock_server: MockServer,
                                                                 tmp_path: Path) -> None:
    # a killed driver left its shards' files: the rerun merges them, and its summary says so
    made = await generate(config(mock_server, tmp_path, out=str(tmp_path / "made.jsonl")))
    lines = lines_of(made.out)
    out = tmp_path / "traces.jsonl"
    out.write_bytes(b"".join(lines[:2]))
    leftovers = tmp_path / "traces.jsonl.shards" / "20260101-000000-abcdef"
    leftovers.mkdir(parents=True)
    (leftovers / "shard-0000-of-0002.jsonl").write_bytes(b"".join(lines[1:4]))
    (leftovers / "shard-0001-of-0002.jsonl").write_bytes(b"".join(lines[4:]))
    summary = await generate_on_ray(config(mock_server, tmp_path))  # nothing left to make: no Ray needed
    assert (summary.resumed, summary.written, summary.planned) == (2, 4, 6)
    assert sum(summary.statuses.values()) == 4 and summary.graded == 4
    assert sorted(lines_of(summary.out)) == sorted(lines)
    assert not (tmp_path / "traces.jsonl.shards").exists()


@pytest.fixture
def fake_ray(monkeypatch: pytest.MonkeyPatch) -> FakeRay:
    ray = FakeRay(cpus=2)
    monkeypatch.setitem(sys.modules, "ray", ray)
    return ray


def outcomes(path: str) -> dict[tuple[str, int], tuple[str, str, bool | None]]:
    """{pair: (trace id, status, correct)}, after checking that no pair is there twice."""
    records = [record_decoder.decode(line) for line in lines_of(path)]
    found = {(r.problem_id, r.sample): (r.trace_id, r.status, r.correct) for r in records}
    assert len(found) == len(records), "a pair is in the traces file twice"
    return found


async def test_the_driver_shards_merges_and_sums_like_a_local_run(fake_ray: FakeRay, mock_server: MockServer,
                                                                  tmp_path: Path) -> None:
    local = await generate(config(mock_server, tmp_path, out=str(tmp_path / "local.jsonl"), samples=2))
    progress: list[Progress] = []
    summary = await generate_on_ray(config(mock_server, tmp_path, samples=2), shards=3, on_progress=progress.append,
                                    progress_every_s=0.01)
    assert outcomes(summary.out) == outcomes(local.out)
    assert (summary.planned, summary.written, summary.resumed) == (12, 12, 0)
    assert (summary.correct, summary.graded, summary.statuses) == (local.correct, local.graded, local.statuses)
    assert set(summary.actor_queue_ms) == set(local.actor_queue_ms)
    assert fake_ray.tasks == 3 and not fake_ray.initialized  # a connection it made is closed again
    assert progress[-1].done == progress[-1].total == 12
    manifest = json.loads(b"".join(lines_of(summary.manifest)))
    assert (manifest["ray"]["workers"], manifest["ray"]["shards"]) == (2, 3)
    assert manifest["versions"]["ray"] == "0.0-fake" and manifest["summary"]["written"] == 12
    assert not (tmp_path / "traces.jsonl.shards").exists()


async def test_a_rerun_after_a_killed_driver_merges_its_leftovers_and_makes_the_rest(
        fake_ray: FakeRay, mock_server: MockServer, tmp_path: Path) -> None:
    made = await generate(config(mock_server, tmp_path, out=str(tmp_path / "made.jsonl")))
    lines = lines_of(made.out)
    leftovers = tmp_path / "traces.jsonl.shards" / "20260101-000000-abcdef"
    leftovers.mkdir(parents=True)
    (leftovers / "shard-0000-of-0002.jsonl").write_bytes(b"".join(lines[:4]))
    summary = await generate_on_ray(config(mock_server, tmp_path))
    assert (summary.resumed, summary.written, sum(summary.statuses.values())) == (0, 6, 6)
    assert outcomes(summary.out) == outcomes(made.out)


async def test_an_error_in_a_shard_stops_the_run_with_its_own_message(
        fake_ray: FakeRay, mock_server: MockServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GROQ_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="GROQ_API_KEY"):
        await generate_on_ray(GenerateConfig(problems="builtin:mixed:4", model=f"groq:llama@{mock_server.url}/v1",
                                             out=str(tmp_path / "traces.jsonl")), workers=2)
    assert not (tmp_path / "traces.jsonl.shards").exists()


async def test_the_manifest_of_a_ray_run_shows_no_key_and_no_url_password(fake_ray: FakeRay, mock_server: MockServer,
                                                                          tmp_path: Path) -> None:
    secret_model = mock_server.url.replace("http://", "mock:reasoner@http://me:hunter2-secret@") + "/v1"
    seen: list[str] = []

    def at_start(_: Progress) -> None:
        seen.append((tmp_path / "traces.jsonl.manifest.json").read_text())

    summary = await generate_on_ray(config(mock_server, tmp_path, model=secret_model), on_progress=at_start,
                                    progress_every_s=0.01,
                                    command=["generate", "--api-key", "sk-secret-0123456789abcdef", "--ray"])
    finished = b"".join(lines_of(summary.manifest)).decode()
    assert seen and summary.written == 6
    for text in (finished, *seen):
        assert "hunter2-secret" not in text and "sk-secret-0123456789abcdef" not in text
    manifest = json.loads(finished)
    assert manifest["config"]["model"].startswith("mock:reasoner@http://***@127.0.0.1:")
    assert manifest["ray"]["servers"] == [manifest["config"]["model"]]


@pytest.mark.parametrize("address", ["garbage", "ray://", "head:port", "head:70000", "http://head:6379", "a b:1"])
async def test_an_address_of_no_form_ray_knows_is_one_line_naming_ray_before_anything_is_touched(
        address: str, no_ray: None, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=rf"^--ray '{address}' is not a Ray address: give HOST:PORT"):
        await generate_on_ray(GenerateConfig(problems="builtin:mixed:2", out=str(tmp_path / "t.jsonl")),
                              address=address)
    assert not (tmp_path / "t.jsonl").exists()


async def test_a_bad_ray_address_in_the_environment_is_named_as_such(no_ray: None, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "garbage")
    with pytest.raises(ConfigurationError, match=r"^RAY_ADDRESS 'garbage' is not a Ray address"):
        await generate_on_ray(GenerateConfig(problems="builtin:mixed:2", out=str(tmp_path / "t.jsonl")))


@pytest.mark.parametrize("address", ["127.0.0.1:1", "ray://127.0.0.1:1"])
async def test_an_address_where_nothing_answers_fails_in_seconds_without_asking_ray(
        address: str, fake_ray: FakeRay, mock_server: MockServer, tmp_path: Path) -> None:
    with anyio.fail_after(30), pytest.raises(ConfigurationError, match=rf"^--ray {address}: no Ray cluster answers"):
        await generate_on_ray(config(mock_server, tmp_path), address=address)
    assert fake_ray.inits == [] and mock_server.requests == 0


async def test_with_no_address_the_run_starts_a_cluster_of_its_own_on_loopback_only(
        fake_ray: FakeRay, mock_server: MockServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", raising=False)
    summary = await generate_on_ray(config(mock_server, tmp_path))
    assert fake_ray.inits == [{"address": "local", "_node_ip_address": "127.0.0.1", "include_dashboard": False,
                               "switch": "0"}]  # never a cluster found running; Ray's loopback switch on
    assert "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER" not in os.environ and not fake_ray.initialized
    assert json.loads(b"".join(lines_of(summary.manifest)))["ray"]["address"] == "local"


async def test_ray_address_in_the_environment_is_the_cluster_joined(
        fake_ray: FakeRay, mock_server: MockServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    where = mock_server.url.removeprefix("http://")  # something answers there
    monkeypatch.setenv("RAY_ADDRESS", where)
    summary = await generate_on_ray(config(mock_server, tmp_path))
    assert [init["address"] for init in fake_ray.inits] == [where]
    assert json.loads(b"".join(lines_of(summary.manifest)))["ray"]["address"] == where


async def test_a_local_cluster_that_would_listen_on_every_interface_is_stopped_and_refused(
        mock_server: MockServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    ray = FakeRay(node_ip_address="192.0.2.2")  # imported before the switch could be set
    monkeypatch.setitem(sys.modules, "ray", ray)
    with pytest.raises(ConfigurationError, match="would start its local cluster on every interface"):
        await generate_on_ray(config(mock_server, tmp_path))
    assert not ray.initialized and ray.tasks == 0 and mock_server.requests == 0


async def test_shards_are_capped_by_the_pairs_to_make_and_say_so(fake_ray: FakeRay, mock_server: MockServer,
                                                                 tmp_path: Path) -> None:
    with capture_logs() as logs:
        summary = await generate_on_ray(config(mock_server, tmp_path), workers=2, shards=1000)
    manifest = json.loads(b"".join(lines_of(summary.manifest)))
    assert (manifest["ray"]["shards"], manifest["ray"]["workers"]) == (6, 2)
    assert fake_ray.tasks <= 6 and summary.written == 6
    capped = [log for log in logs if log["event"] == "ray_sizes_capped"]
    assert len(capped) == 1 and (capped[0]["shards_asked"], capped[0]["shards"], capped[0]["pairs_to_make"]) == (
        1000, 6, 6)


async def test_shards_are_capped_at_the_maximum_and_workers_at_the_shards(
        fake_ray: FakeRay, mock_server: MockServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "MAX_SHARDS", 4)
    with capture_logs() as logs:
        summary = await generate_on_ray(config(mock_server, tmp_path), workers=8, shards=10**8)
    manifest = json.loads(b"".join(lines_of(summary.manifest)))
    assert (manifest["ray"]["shards"], manifest["ray"]["workers"]) == (4, 4)
    assert summary.written == 6 and [log["max_shards"] for log in logs if log["event"] == "ray_sizes_capped"] == [4]
