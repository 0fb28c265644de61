"""Many rows of a batch on a Dask cluster: one task per row, each running the library's
:func:`medfuse.clinical.batch.fuse_row`, the function a serial run calls. Imported only when a
cluster is asked for; knows nothing of the command line."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from medfuse._shared.optional import import_optional

import_optional("distributed", purpose="a Dask cluster (--workers, --scheduler)")

from distributed import Client, LocalCluster, as_completed  # noqa: E402 (after the check that Dask is installed)
from distributed.scheduler import KilledWorker  # noqa: E402

from medfuse._shared.errors import InputError  # noqa: E402
from medfuse.clinical.batch import BatchJob, Outcome, Row, fuse_row  # noqa: E402


@contextmanager
def dask_client(workers: int | None, scheduler: str | None) -> Iterator[Client]:
    """A client of a local cluster of ``workers`` processes (one thread each), closed at the
    end, or of the running cluster at ``scheduler``; InputError if neither can be had."""
    try:
        if scheduler is not None:
            client = Client(scheduler, timeout="20s")
        else:
            client = Client(
                LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
            )
    except (OSError, TimeoutError, ValueError) as error:
        raise InputError(
            f"scheduler {scheduler}: cannot connect ({error})"
            if scheduler
            else f"cannot start a local Dask cluster ({error})"
        ) from None
    with client:
        yield client
        if scheduler is None:
            client.cluster.close()


def fuse_rows_on_dask(rows: list[Row], job: BatchJob, client: Client) -> Iterator[tuple[Row, Outcome]]:
    """``(row, outcome)`` for every row as its task finishes. A row whose worker died is run
    again elsewhere by Dask; one that kills its workers again and again fails. On CUDA with a
    cluster that medfuse did not start, each task asks for the Dask resource ``GPU=1`` (start
    each worker with ``--resources GPU=1``, one per GPU); a local cluster's workers share the
    machine's GPUs as torch sees them."""
    local = isinstance(client.cluster, LocalCluster)
    resources = {"GPU": 1} if job.device.startswith("cuda") and not local else None
    futures = {
        client.submit(fuse_row, row, job, key=f"medfuse-batch-line-{row.line}", pure=False, resources=resources): row
        for row in rows
    }
    for future in as_completed(futures):
        row = futures[future]
        try:
            yield row, future.result()
        except KilledWorker:
            yield row, ("failed", "its worker died each time Dask ran it")
