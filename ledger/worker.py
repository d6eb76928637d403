"""The worker: claim jobs, run the handler, record outcomes, keep leases alive.

Threads, one job each:

* the **flusher** records finished attempts in batches and, in the same SQL
  transaction, claims the next jobs for the slots they free
  (``Ledger.exchange``): in steady state one transaction (one commit) per batch
  moves a worker on by a batch of outcomes and a batch of claims. It waits
  ``linger_seconds`` for a burst of finishing handlers to join one batch;
* the **claimer** claims when the flusher does not: at start, after the queue
  ran dry, or when handler threads would otherwise sit idle; when nothing is
  ready it blocks on Redis (``HotQueue.wait``), never spinning;
* the **handler pool** (``concurrency`` threads) runs the handler;
* the **main thread** maintains: renews the leases of held jobs (every third of
  a lease), reaps expired leases and runs the relay's sweep (which recovers if
  Redis was flushed) every ``sweep_seconds``, drops stale payload cache entries
  now and then, and in ``burst`` mode stops once the queue is empty.

A worker holds at most ``concurrency + prefetch`` jobs, so the next claim
overlaps the running handlers; a claim waits until half of that is free (unless
handlers would idle), so claims come in few large transactions. The default
prefetch follows the handler's run time (``ledger.claim_sizing``): about a
quarter of a second of work waiting per thread, from one job per thread for
slow jobs to 256 for fast ones; ``--prefetch N`` fixes it.

``stop()`` (SIGTERM/SIGINT) stops claiming, lets the jobs already handed out
(running or prefetched) finish, records their outcomes, and returns. Jobs are
finished rather than handed back because the lifecycle can only return a job to
waiting through ``failed``, which would spend an attempt of its budget.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from ledger.claim_sizing import Prefetch
from ledger.errors import DatabaseUnavailable, LedgerError, QueueUnavailable
from ledger.handler import Handler, run_handler
from ledger.polling import Poller
from ledger.service import ClaimBatch, ClaimedJob, Ledger, Outcome, OutcomeResult
from ledger.trouble import Trouble, report
from ledger.worker_options import WorkerOptions, WorkerStats, counter_of, new_worker_id

log = logging.getLogger("ledger.worker")

#: first and longest wait (seconds) between start-up checks of a backend that is away
START_BACKOFF = (0.25, 5.0)


class Worker:
    """Runs one handler over the hot queue until stopped (or drained, in burst mode)."""

    def __init__(
        self,
        ledger: Ledger,
        handler: Handler,
        options: WorkerOptions | None = None,
        *,
        worker_id: str | None = None,
        on_attempt: Callable[[Outcome, float], None] | None = None,
    ) -> None:
        self.ledger = ledger
        #: told each attempt's outcome and handler run time (metrics)
        self.on_attempt = on_attempt
        self.handler = handler
        self.options = options or WorkerOptions()
        self.worker_id = worker_id or new_worker_id()
        self.stats = WorkerStats()
        self._stop = threading.Event()
        #: set by ``stop``, which takes no lock as it may run in a signal handler; the
        #: queue wakes the maintenance loop, which then sets ``_stop`` for every thread
        self._stop_requested = False
        self._stop_requests: queue.SimpleQueue[None] = queue.SimpleQueue()
        self._handlers_done = threading.Event()
        #: the start-up recovery is done (until then the maintenance tick retries it)
        self._recovered = False
        #: the last claim found the queue paused (``ledger pause``): claims give nothing
        self.paused = False
        self._trouble = Trouble()
        self._slots = threading.Condition()
        #: one claim at a time (the claimer's, or the flusher's with its outcomes)
        self._claiming = threading.Lock()
        self._held: dict[str, ClaimedJob] = {}
        self.prefetch = Prefetch(self.options.concurrency, fixed=self.options.prefetch)
        self._outcomes: queue.Queue[Outcome] = queue.Queue()
        self._pool = ThreadPoolExecutor(
            max_workers=self.options.concurrency, thread_name_prefix="ledger-handler"
        )

    @property
    def capacity(self) -> int:
        """Jobs held at once: one per handler thread plus the prefetched ones."""
        return self.options.concurrency + self.prefetch.count

    def stop(self) -> None:
        """Stop claiming; jobs already held finish and their outcomes are recorded.

        Safe in a signal handler: it takes no lock (``SimpleQueue.put`` is
        reentrant). Setting the stop ``Event`` there could deadlock: the handler
        runs in the main thread, which may be inside that Event's ``wait`` holding
        its lock. The maintenance loop turns the request into the stop.
        """
        self._stop_requested = True
        self._stop_requests.put(None)

    @property
    def stopping(self) -> bool:
        return self._stop_requested or self._stop.is_set()

    def run(self) -> WorkerStats:
        """Wait for Redis and the database, recover the queue from the log, work until stopped.

        A backend that is away (down, refusing connections, out of memory) is
        waited for with capped backoff, one log line per change; an evicting
        Redis or a database without the ledger's tables is refused at once.
        Claiming starts while the recovery runs: the relay only adds what Redis
        lacks, which is safe next to any claimer (this worker's or another's),
        and jobs Redis already holds need not wait for it. A recovery that fails
        (Redis refusing writes) is tried again at every maintenance tick.
        """
        if not self._wait_for_backends():
            return self.stats
        claimer = threading.Thread(target=self._claim_loop, name="ledger-claimer", daemon=True)
        flusher = threading.Thread(target=self._flush_loop, name="ledger-flusher", daemon=True)
        claimer.start()
        flusher.start()
        poller = Poller.of(self.ledger, self.handler, self.worker_id)
        if poller is not None:
            threading.Thread(
                target=poller.run, args=(self._stop,), name="ledger-poller", daemon=True
            ).start()
        try:
            self._guard(self._recover)
            self._maintain_loop()
        finally:
            self._stop.set()
            claimer.join()
            with self._claiming:  # a claim in progress hands its jobs to the pool first
                pass
            self._pool.shutdown(wait=True)
            self._handlers_done.set()
            flusher.join()
            log.info("worker %s stopped: %s", self.worker_id, self.stats)
        return self.stats

    def _wait_for_backends(self) -> bool:
        """Until Redis (safe to use) and the log answer; False when stopped meanwhile."""
        delay = START_BACKOFF[0]
        waiting: str | None = None
        while True:
            try:
                self.ledger.queue.check_safe()
                self.ledger.store.head()
            except (QueueUnavailable, DatabaseUnavailable) as error:
                if type(error).__name__ != waiting:
                    waiting = type(error).__name__
                    log.warning("worker %s waiting: %s", self.worker_id, error.message)
                if self._wait_for_stop(delay):
                    return False
                delay = min(delay * 2, START_BACKOFF[1])
                continue
            if waiting is not None:
                log.info("worker %s: Redis and the database answer, starting", self.worker_id)
            return True

    def _recover(self) -> None:
        """The start-up recovery (``Ledger.recover``); a failure is retried next tick."""
        report = self.ledger.recover()
        self._recovered = True
        log.info(
            "worker %s started: %d live jobs in the log, %d pushed, %d leases restored",
            self.worker_id,
            report.live,
            report.pushed,
            report.restored,
        )

    # -- claiming ----------------------------------------------------------------

    def _claim_size(self, held: int) -> int:
        """How many jobs to claim while holding ``held``, or 0 when not worth a transaction.

        A claim is worth it when half the capacity is free, or when a handler
        thread would otherwise sit idle: claiming each freed slot at once would
        mean many small transactions (each a commit) instead of a few large ones.
        """
        free = self.capacity - held
        if free >= max(1, self.capacity // 2) or held < self.options.concurrency:
            return free
        return 0

    def _to_claim(self, releasing: int = 0) -> int:
        """``_claim_size`` now; ``releasing`` held jobs have their outcomes being recorded."""
        if self.stopping:
            return 0
        with self._slots:
            return self._claim_size(len(self._held) - releasing)

    def _claim_loop(self) -> None:
        """Claims when the flusher does not: at start, after idling, when handlers starve."""
        while not self.stopping:
            with self._slots:
                self._slots.wait_for(
                    lambda: self.stopping or self._claim_size(len(self._held)) > 0,
                    timeout=0.5,
                )
            try:
                batch = self._claim()
            except Exception as error:  # keep claiming: a dead claimer would hang the worker
                self._trouble.failed("claim", error)
                self._stop.wait(1.0)
                continue
            self._trouble.worked("claim")
            if batch is not None and not batch.jobs:
                self._idle(batch)

    def _claim(self) -> ClaimBatch | None:
        with self._claiming:
            free = self._to_claim()
            if free <= 0:
                return None
            batch = self.ledger.claim_batch(self.worker_id, free, self.options.lease)
            self.paused = batch.paused
            self._start(batch.jobs)
            return batch

    def _start(self, jobs: Sequence[ClaimedJob]) -> None:
        if not jobs:
            return
        with self._slots:
            for job in jobs:
                self._held[job.id] = job
        self.stats.count(claimed=len(jobs))
        for job in jobs:
            self._pool.submit(self._execute, job)

    def _execute(self, job: ClaimedJob) -> None:
        started = time.perf_counter()
        outcome = run_handler(self.handler, job)
        elapsed = time.perf_counter() - started
        self.prefetch.observe(elapsed)
        if self.on_attempt is not None:
            self.on_attempt(outcome, elapsed)
        self._outcomes.put(outcome)

    def _idle(self, batch: ClaimBatch) -> None:
        timeout = self.options.idle_seconds
        if batch.paused:
            # not on Redis' wake-ups: enqueues go on while paused, and each would wake us
            self._stop.wait(timeout)
            return
        if batch.next_due is not None:
            timeout = min(timeout, (batch.next_due - batch.now).total_seconds())
        try:
            self.ledger.queue.wait(max(timeout, 0.01))
        except LedgerError as error:
            log.warning("waiting on Redis failed (%s); retrying", error)
            self._stop.wait(1.0)

    # -- recording -----------------------------------------------------------------

    def _flush_loop(self) -> None:
        while True:
            try:
                first = self._outcomes.get(timeout=0.1)
            except queue.Empty:
                if self._handlers_done.is_set() and self._outcomes.empty():
                    return
                continue
            self._record(self._gather(first))

    def _gather(self, first: Outcome) -> list[Outcome]:
        """``first`` and the outcomes that follow within ``linger_seconds`` (up to ``batch``).

        A short linger turns a burst of finishing handlers into one outcome
        transaction instead of one per handler.
        """
        batch = [first]
        deadline = time.monotonic() + self.options.linger_seconds
        while len(batch) < self.options.batch:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    batch.append(self._outcomes.get_nowait())
                else:
                    batch.append(self._outcomes.get(timeout=remaining))
            except queue.Empty:
                break
        return batch

    def _record(self, batch: list[Outcome]) -> None:
        """Record the outcomes and, in the same transaction, claim the next jobs."""
        results: list[OutcomeResult] = []
        # about half a minute of retries: a database restart should not cost a retry
        for attempt, delay in enumerate((0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0)):
            time.sleep(delay)
            with self._claiming:
                # claim only on the first try: a failed append leaves its claims to the reaper
                free = self._to_claim(releasing=len(batch)) if attempt == 0 else 0
                try:
                    results, claimed = self.ledger.exchange(
                        self.worker_id, batch, free, self.options.lease
                    )
                except Exception as error:  # keep the flusher alive; the batch is retried
                    report(f"recording {len(batch)} outcomes", error)
                    continue
                self._release([outcome.job.id for outcome in batch])
                if free > 0:
                    self.paused = claimed.paused
                self._start(claimed.jobs)
                break
        else:
            # the leases expire and the reaper retries these attempts: at least once
            log.error("gave up recording %d outcomes; their leases will expire", len(batch))
            self._release([outcome.job.id for outcome in batch])
        for result in results:
            if result.refused is not None:
                log.info("%s", result.refused.message)
                self.stats.count(refused=1)
            elif result.state is not None:
                self.stats.count(**{counter_of(result.state.status): 1})

    def _release(self, job_ids: Sequence[str]) -> None:
        with self._slots:
            for job_id in job_ids:
                self._held.pop(job_id, None)
            self._slots.notify_all()

    # -- maintenance ---------------------------------------------------------------

    def _maintain_loop(self) -> None:
        lease = self.options.lease.total_seconds()
        tick = min(self.options.sweep_seconds, lease / 3)
        now = time.monotonic()
        due = {
            "renew": now + lease / 3,
            "sweep": now,
            "cleanup": now + self.options.cleanup_seconds,
        }
        while not self._wait_for_stop(tick):
            now = time.monotonic()
            if now >= due["renew"]:
                self._guard(self._renew)
                due["renew"] = now + lease / 3
            if now >= due["sweep"]:
                self._guard(self._maintain if self._recovered else self._recover)
                due["sweep"] = now + self.options.sweep_seconds
            if now >= due["cleanup"]:
                self._guard(self.ledger.cleanup)
                due["cleanup"] = now + self.options.cleanup_seconds
            if self.options.burst and self._recovered and self.paused:
                log.info("burst: the queue is paused (ledger resume lets workers claim), stopping")
                self.stats.paused = True
                self._stop.set()
            elif self.options.burst and self._recovered and self._drained():
                log.info(
                    "burst: nothing ready or due within %s, stopping (%d delayed jobs left)",
                    self.options.burst_horizon,
                    self.stats.delayed_left,
                )
                self._stop.set()

    def _wait_for_stop(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for a stop request; on one, stop every thread."""
        if self._stop.is_set():  # burst mode found the queue drained
            return True
        try:
            self._stop_requests.get(timeout=timeout)
        except queue.Empty:
            return self._stop.is_set()
        self._stop.set()
        return True

    def _guard(self, step: Callable[[], object]) -> None:
        what = getattr(step, "__name__", "maintenance").strip("_")
        try:
            step()
        except Exception as error:  # maintenance is retried on the next tick
            self._trouble.failed(what, error)
        else:
            self._trouble.worked(what)

    def _renew(self) -> None:
        with self._slots:
            held = list(self._held.values())
        lost = self.ledger.renew(held, self.options.lease)
        if lost:
            self.stats.count(lost_leases=len(lost))
            log.warning("%d leases were lost (reaped or Redis flushed): %s", len(lost), lost[:5])

    def _maintain(self) -> None:
        self.ledger.reap()
        report = self.ledger.sweep()
        if report.recovered:
            log.warning(
                "Redis had lost the queue (flush, restart or failover): recovered %d live jobs "
                "from the log (%d pushed, %d leases restored)",
                report.live,
                report.pushed,
                report.restored,
            )

    def _drained(self) -> bool:
        with self._slots:
            if self._held or not self._outcomes.empty():
                return False
        if self.ledger.relay.pending:
            return False
        depths = self.ledger.queue.depths()
        if depths.ready + depths.due + depths.inflight:
            return False
        # delayed jobs due soon are waited for; ones due later are left for another run
        horizon_ms = depths.now_ms + self.options.burst_horizon // timedelta(milliseconds=1)
        if depths.delayed and self.ledger.queue.delayed_due_by(horizon_ms):
            return False
        self.stats.delayed_left = depths.delayed
        return True


__all__ = ["Worker", "WorkerOptions", "WorkerStats", "new_worker_id"]
