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
#
# The method replaced is private: the fix applies only to the releases it was tested on, and
# the workflow refuses to start where one of them lacks the method or changed its signature,
# rather than run without the fix and without a word. The upstream report, ready to send:
# docs/snakemake-scheduler-bug.md.

import inspect
import sys
import threading
import time

import snakemake
from packaging.version import Version
from snakemake.scheduling.job_scheduler import JobScheduler

# The bug came with 9.0.0; the fix was measured on 9.27.1 (bench/results/scheduler_idle.md).
# A later release runs without it until the fix has been tested there.
SCHEDULER_FIX_RELEASES = (Version("9.0.0"), Version("9.27.1"))
REPLACED_METHOD = "_schedule_reevalutation"  # Snakemake's own spelling
REPLACED_PARAMETERS = ["self", "delay"]


def _schedule_one_reevaluation(scheduler, delay):
    now = time.monotonic()
    pending = getattr(scheduler, "_reevaluation_due", 0.0)
    if now < pending <= now + delay:
        return  # a wake is pending, no later than this one would be: it runs the loop again
    scheduler._reevaluation_due = now + delay
    timer = threading.Timer(delay, scheduler._open_jobs.release)
    timer.daemon = True
    timer.start()


def _apply_scheduler_fix():
    version = Version(snakemake.__version__)
    first, last = SCHEDULER_FIX_RELEASES
    if not first <= version <= last:
        print(
            f"Snakemake {version}: the workflow's scheduler fix (rules/scheduler.smk) is "
            f"tested on {first} to {last} only, so it is not applied",
            file=sys.stderr,
        )
        return
    original = getattr(JobScheduler, REPLACED_METHOD, None)
    parameters = (
        None if original is None else list(inspect.signature(original).parameters)
    )
    if parameters != REPLACED_PARAMETERS:
        found = "no such method" if original is None else f"({', '.join(parameters)})"
        print(
            f"refused: Snakemake {version}: rules/scheduler.smk replaces "
            f"JobScheduler.{REPLACED_METHOD}({', '.join(REPLACED_PARAMETERS)}), found "
            f"{found}; this release needs the fix adapted (docs/snakemake-scheduler-bug.md)",
            file=sys.stderr,
        )
        sys.exit(1)
    setattr(JobScheduler, REPLACED_METHOD, _schedule_one_reevaluation)


_apply_scheduler_fix()
