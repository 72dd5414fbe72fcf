# A fix for Snakemake's scheduler (9.x, up to at least the pinned 9.27.1), loaded before any
# rule. After every pass of its loop, Snakemake starts a `threading.Timer` that wakes the
# loop again after the `max-jobs-per-timespan` timespan, and each wake starts another timer:
# every job that ends begins a new chain of wakes that lasts to the end of the run. In the
# default study, after the 690 preprocessing jobs, 350 timers woke the scheduler 70 times a
# second while the GPU jobs waited for `gpu=1`, each wake solving the job-selection ILP: 0.6
# of a core of 2 (bench/results/default_run.md). The timers are not daemons either, so the
# process waits for the last of them before it exits.
#
# Here one wake at a time is pending: a pass that finds one pending starts none; a job's end
# still wakes the loop at once. The timer is a daemon, so the exit waits for nothing.

import threading
import time

from snakemake.scheduling.job_scheduler import JobScheduler


def _schedule_one_reevaluation(scheduler, delay):
    now = time.monotonic()
    pending = getattr(scheduler, "_reevaluation_due", 0.0)
    if now < pending <= now + delay:
        return  # a wake is pending, no later than this one would be: it runs the loop again
    scheduler._reevaluation_due = now + delay
    timer = threading.Timer(delay, scheduler._open_jobs.release)
    timer.daemon = True
    timer.start()


if hasattr(JobScheduler, "_schedule_reevalutation"):  # the name Snakemake 9 gives it
    JobScheduler._schedule_reevalutation = _schedule_one_reevaluation
