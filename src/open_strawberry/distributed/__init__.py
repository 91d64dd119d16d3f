"""``generate`` on a Ray cluster: the same run, its pairs made by many processes and machines.

``open-strawberry generate ... --ray [ADDRESS]``, or :func:`generate_on_ray` from Python. Ray is
an optional extra (``pip install -e '.[ray]'``), imported only when a run uses it.

- **The cluster** (:mod:`~open_strawberry.distributed.cluster`): the address given (or
  ``RAY_ADDRESS``), its form checked first and its port tried for a few seconds before Ray joins
  it; with none, a local cluster of the run's own on 127.0.0.1, never one found running.
- **Sharding** (:mod:`~open_strawberry.distributed.sharding`): the driver checks everything a
  local run checks and claims ``--out`` as it does
  (:func:`~open_strawberry.pipeline.preflight.claim_run`), then hashes each
  ``(problem_id, sample)`` pair still to make into one of ``shards`` shards (a stable hash:
  the same shard in every process and every rerun; at most one shard per pair to make). Each
  shard is one Ray task that runs the ordinary anyio pipeline,
  :func:`~open_strawberry.pipeline.generate`, in an event loop of its own, on its own traces
  file (:mod:`~open_strawberry.distributed.worker`). ``workers``
  shards run at once; ``max_traces`` and ``max_concurrency`` are for the whole run and split
  among them. A ``--model`` that lists several base URLs of one model spreads the shards over
  them.
- **Merging and resume** (:mod:`~open_strawberry.distributed.merge`): the driver appends each
  finished shard's records to ``--out``, skipping pairs already there, and only then deletes
  the shard file. A shard whose worker dies is retried by Ray and resumes from its own file. A
  driver that is killed leaves shard files behind; the rerun merges them first (counted as its
  own records written), then makes only the pairs still missing (finished shards are not run
  again), so every pair is in ``--out`` exactly once.
- **Budgets** (:mod:`~open_strawberry.distributed.budget`): ``--rpm``, ``--tpm``,
  ``--input-tpm`` and ``--output-tpm`` hold for the whole cluster. They live once, in a pool of
  token buckets inside one small Ray actor (the
  :class:`~open_strawberry.distributed.coordinator.Coordinator`), which grants leases; each
  worker's limiter is fed from it, taking what its waiting calls need and giving back what it
  does not use. A fixed split per worker was the alternative: it wastes the share of a worker
  that is idle or done, which leases give to the others.
- **Progress**: each shard reports its snapshots to the coordinator; the driver sums them into
  one :class:`~open_strawberry.pipeline.Progress`, so the terminal display is a local run's.
- **Disks**: workers that share the driver's disk write their shard files beside ``--out``
  (``<out>.shards/<run>/``); others write in their temporary folder and send the file back
  through Ray's object store when the shard ends (a problems file they cannot see is sent to
  them the same way).
"""

from open_strawberry.distributed.budget import BudgetFeed, BudgetPool, LeaseSource, LocalLeases, shared_budgets
from open_strawberry.distributed.cluster import INSTALL_HINT, import_ray
from open_strawberry.distributed.coordinator import Coordinator, combine_progress
from open_strawberry.distributed.merge import merge_shard, salvage_shards
from open_strawberry.distributed.runner import generate_on_ray
from open_strawberry.distributed.sharding import shard_of, split_servers

__all__ = [
    "INSTALL_HINT",
    "BudgetFeed",
    "BudgetPool",
    "Coordinator",
    "LeaseSource",
    "LocalLeases",
    "combine_progress",
    "generate_on_ray",
    "import_ray",
    "merge_shard",
    "salvage_shards",
    "shard_of",
    "shared_budgets",
    "split_servers",
]
