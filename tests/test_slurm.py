"""The study through profiles/slurm on a real SLURM cluster (tests/slurm/start_cluster.sh).

A slice of the tiny study (two strategies, one size, two folds) runs job by job through the
scheduler with the shipped profile; only what a 2-core test node cannot give (account,
memory, CPUs) and what a site without accounting needs
(status from `squeue`, a short polling interval) are overridden, in a copy of the profile.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from conftest import REPO, finished_rules, local_rules

pytestmark = [pytest.mark.slurm, pytest.mark.workflow]

# CI sets this: there the cluster must be up, and a skip would hide that it is not
REQUIRE = "LESION_TRANSFER_REQUIRE_SLURM"
GPU_RULES = {"pretrain_source", "finetune", "evaluate_model", "score_source"}
STRATEGIES = ["scratch", "ft_all"]
# what a test may change in the shipped profile: the site's account, sizes for a 2-core
# node, how often to poll, and the status command of a site without accounting
OVERRIDDEN = {"default-resources": {"slurm_account", "mem_mb", "cpus_per_task", "runtime"},
              "set-resources": {"mem_mb", "cpus_per_gpu", "cpus_per_task", "runtime"},
              "set-threads": None, "jobs": None, "cores": None,
              "latency-wait": None, "seconds-between-status-checks": None,
              "slurm-status-command": None, "slurm-init-seconds-before-status-checks": None}


def cluster_problem():
    if not shutil.which("sinfo"):
        return "no SLURM here (sinfo not found): tests/slurm/start_cluster.sh starts one"
    result = subprocess.run(["sinfo", "-h", "-o", "%P %T"], capture_output=True, text=True,
                            timeout=30)
    states = dict(line.split() for line in result.stdout.splitlines())
    if result.returncode != 0 or {"cpu*", "gpu"} - set(states):
        return f"SLURM is not up with partitions cpu and gpu: {result.stdout}{result.stderr}"
    if set(states.values()) - {"idle", "mixed", "allocated"}:
        return f"the SLURM node is not usable: {states}"
    return None


@pytest.fixture(scope="module")
def cluster():
    problem = cluster_problem()
    if problem and os.environ.get(REQUIRE):
        pytest.fail(f"{REQUIRE} is set, but {problem}")
    if problem:
        pytest.skip(problem)


def override_profile(path):
    """profiles/slurm with the test's overrides, written to `path`/config.yaml."""
    shipped = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    profile = json.loads(json.dumps(shipped))
    profile["default-resources"].update(slurm_account="root", mem_mb=400, cpus_per_task=1,
                                        runtime=20)
    for rule in workflow_rules():  # rules declare memory too: every one is sized down
        resources = profile["set-resources"].setdefault(rule, {})
        resources["mem_mb"] = 600 if rule in GPU_RULES else 400
        resources["runtime"] = 20
        if "cpus_per_gpu" in resources:
            resources["cpus_per_gpu"] = 1
    profile["set-threads"] = {rule: 1 for rule in profile["set-threads"]}
    # the node's 2 cores bound what a group of subjects asks for at once
    profile.update({"cores": 2, "jobs": 20, "latency-wait": 10, "seconds-between-status-checks": 2,
                    "slurm-status-command": "squeue",
                    "slurm-init-seconds-before-status-checks": 1})
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return path, shipped, profile


def workflow_rules():
    return re.findall(r"^\s*(?:rule|checkpoint) (\w+):", "".join(
        p.read_text() for p in (REPO / "rules").glob("*.smk")), re.MULTILINE)


def changed_keys(shipped, profile):
    """(key, sub-key) pairs in which the test's profile differs from the shipped one."""
    changed = set()
    for key in set(shipped) | set(profile):
        if shipped.get(key) == profile.get(key):
            continue
        if key == "set-resources":
            changed |= {(key, field) for rule in profile[key]
                        for field in set(profile[key][rule]) | set(shipped[key].get(rule, {}))
                        if profile[key][rule].get(field) != shipped[key].get(rule, {}).get(field)}
        elif key == "default-resources":
            changed |= {(key, field) for field in profile[key]
                        if profile[key][field] != shipped[key].get(field)}
        else:
            changed.add((key, None))
    return changed


def slice_config(path):
    config = yaml.safe_load((REPO / "configs" / "ci.yaml").read_text())
    config["splits"].update(sizes=[1])
    config["train"].update(device="auto", strategies=STRATEGIES, repeats=1)
    config["use"] = ["ms_phantom", "brats_phantom"]  # no control arm in this slice
    # long enough to be cancelled in the middle (three epochs of seconds each between the
    # first epoch's line and the last's; the watcher looks twice a second)
    config["train"]["finetune"].update(epochs=4, iterations_per_epoch=20)
    # the fewest subjects a source split and two folds take: every SLURM job here starts
    # Snakemake twice (the job step and the rule), seconds of a 2-core node each
    config["datasets"]["brats_phantom"]["phantom"].update(subjects=4, unlabelled_subjects=0)
    config["datasets"]["ms_phantom"]["phantom"].update(subjects=2)
    path.write_text(yaml.safe_dump(config))
    return path


def snakemake_command(workdir, profile, configfile):
    return [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
            "--directory", str(workdir), "--profile", str(profile), "--retries", "0",
            "--configfile", str(configfile)]


def submitted_job_ids(text):
    """SLURM ids of single jobs and of job arrays, as Snakemake's log reports them."""
    return re.findall(r"submitted with SLURM jobid (\d+)|SLURM job ID (\d+)\. The individual",
                      text)


def submitted_rules(text):
    """The rule of every single job Snakemake submitted, as its log reports it (only in the
    path of the job's SLURM log: Snakemake prints no `rule` line for a submitted job)."""
    return re.findall(r"submitted with SLURM jobid \d+ \(log: \S*/rule_(\w+)/", text)


def scheduler_record(job_id):
    """`scontrol show job` as a dict (finished jobs stay for MinJobAge)."""
    out = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True,
                         text=True, timeout=30).stdout
    return dict(re.findall(r"(\w+)=(\S*)", out))


@pytest.fixture(scope="module")
def slurm_study(cluster, tmp_path_factory):
    """The slice run through SLURM with one fine-tuning job cancelled mid-training by
    `scancel` and another sent back to the queue by `scontrol requeue` (what preemption
    does), then the same command again; returns what both runs said and wrote."""
    root = tmp_path_factory.mktemp("slurm")
    workdir = root / "study"
    profile, shipped, overridden = override_profile(root / "profile")
    command = snakemake_command(workdir, profile, slice_config(root / "slice.yaml"))
    logs = workdir / "results" / "logs" / "finetune"
    # the fine-tuning jobs, by the wildcards their SLURM comment carries
    jobs = {f"{strategy}_1_{fold}": logs / strategy / "n1" / f"fold{fold}.log"
            for strategy in STRATEGIES for fold in (0, 1)}
    first_out = root / "first.out"
    requeued = cancelled = None  # (wildcards, SLURM id): the first job seen mid-training
    gpus = GpuWatch()  # what the scheduler handed the running GPU jobs, through both runs
    with gpus, first_out.open("w") as out:  # is requeued, then another cancelled (ends the run)
        run = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                               start_new_session=True)
        try:
            deadline = time.time() + 1800  # the study up to fine-tuning, job by job
            while time.time() < deadline and run.poll() is None and not cancelled:
                for wildcards, log in jobs.items():
                    job_id = mid_training(log) and job_running("finetune", wildcards)
                    if job_id and not requeued:
                        subprocess.run(["scontrol", "requeue", job_id], check=True, timeout=30)
                        requeued = (wildcards, job_id)
                    elif job_id and wildcards != requeued[0]:
                        subprocess.run(["scancel", job_id], check=True, timeout=30)
                        cancelled = (wildcards, job_id)
                        break
                time.sleep(0.5)
            run.wait(timeout=1200)
        finally:
            if run.poll() is None:
                os.killpg(run.pid, signal.SIGKILL)
                subprocess.run(["scancel", "--name", "*"], capture_output=True)
    first = first_out.read_text()
    assert requeued and cancelled, f"no two jobs caught mid-training:\n{first[-4000:]}"
    requeued = {"id": requeued[1], "log": jobs[requeued[0]].read_text(),
                "record": scheduler_record(requeued[1]),
                "model": model_of(workdir, requeued[0])}
    finished = {p: p.stat().st_mtime_ns for p in (workdir / "results" / "models").rglob(
        "model.pt")}
    with gpus:
        second = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-5000:]
    return {"workdir": workdir, "first": first, "second": second.stdout + second.stderr,
            "cancelled_id": cancelled[1], "requeued": requeued, "finished_before": finished,
            "cancelled_log": jobs[cancelled[0]],
            "cancelled_model": model_of(workdir, cancelled[0]),
            "shipped": shipped, "profile": overridden, "gpus": gpus}


def model_of(workdir, wildcards):
    strategy, size, fold = wildcards.rsplit("_", 2)
    return workdir / "results" / "models" / strategy / f"n{size}" / f"fold{fold}" / "model.pt"


def mid_training(log):
    """A fine-tuning job past its first epoch (its checkpoint written), not yet finished."""
    text = log.read_text() if log.exists() else ""
    return "epoch 1/4 loss" in text and "epoch 4/4 loss" not in text


def job_running(rule, wildcards):
    """The SLURM id of the running job of `rule` whose comment names these wildcards."""
    out = subprocess.run(["squeue", "-h", "-t", "RUNNING", "-O", "JobID:20,Comment:300"],
                         capture_output=True, text=True, timeout=30).stdout
    for line in out.splitlines():
        job_id, _, comment = line.strip().partition(" ")
        comment = comment.strip()
        if comment.startswith(f"rule_{rule}") and wildcards in comment:
            return job_id
    return None


def test_only_site_and_size_settings_of_the_shipped_profile_are_overridden(tmp_path):
    _, shipped, profile = override_profile(tmp_path)
    for key, field in changed_keys(shipped, profile):
        assert key in OVERRIDDEN, key
        assert OVERRIDDEN[key] is None or field in OVERRIDDEN[key], (key, field)
    assert profile["executor"] == "slurm"
    assert profile["slurm-array-jobs"] == shipped["slurm-array-jobs"]


def test_every_job_went_through_the_scheduler_to_its_partition(slurm_study):
    text = slurm_study["first"] + slurm_study["second"]
    ids = [single or array for single, array in submitted_job_ids(text)]
    arrays = re.findall(r"Submitted array job with Snakemake IDs ([\d,]+)", text)
    singles = len(re.findall(r"has been submitted with SLURM jobid", text))
    finished = [r for r in finished_rules(text) if r != "all"]
    # the Snakefile's localrules ran where Snakemake runs (never seen by the scheduler,
    # below); every other job went through SLURM: as many submissions as they finished, and
    # one more, the job that was cancelled and submitted again
    local = [r for r in finished if r in local_rules()]
    assert set(local) == {"make_splits", "summarise_qc"} == local_rules(), set(local)
    assert singles + sum(len(a.split(",")) for a in arrays) == len(finished) - len(local) + 1
    seen = set()
    for job_id in ids:
        record = scheduler_record(job_id)
        rule = rule_of(record.get("Comment", ""))
        seen.add(rule)
        gpus = record.get("TresPerJob", "") + record.get("TresPerNode", "")
        if rule in GPU_RULES:
            assert record["Partition"] == "gpu", (job_id, record)
            assert gpus == "gres:gpu:1", (job_id, record)  # one GPU each
        else:
            assert record["Partition"] == "cpu", (job_id, record)
            assert "gpu" not in gpus, (job_id, record)
    assert GPU_RULES <= seen and {"ingest_dataset", "fit_nyul", "aggregate_results"} <= seen
    assert not seen & set(local), seen
    # per-subject steps went as job arrays: one sbatch call for several subjects
    assert arrays and max(len(a.split(",")) for a in arrays) >= 4, arrays
    assert {"coregister_modalities", "register_to_template"} <= seen


def rule_of(comment):
    """The rule of the plugin's job comment `rule_<name>[_wildcards_<...>]`."""
    return comment.removeprefix("rule_").split("_wildcards_")[0]


class GpuWatch:
    """Samples `scontrol -d show job` twice a second while in a `with` block: which GPU
    (its index on the node) the scheduler gave each running job of the gpu partition, and
    when. A job's log holds only the run that wrote it last, and a job can run more than once
    (requeued under the same SLURM id, cancelled and rerun under a new one), so a log's line is
    matched to the run by its time, not by the order of SLURM ids."""

    def __init__(self):
        self.samples = []  # (seconds since midnight, {SLURM id: (job comment, GPU index)})
        self._stop = threading.Event()

    def __enter__(self):
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=30)

    def _watch(self):
        while not self._stop.wait(0.5):
            clock = time.localtime()
            out = subprocess.run(["scontrol", "-d", "-o", "show", "job"], capture_output=True,
                                 text=True, timeout=30).stdout
            running = {}
            for line in out.splitlines():
                fields = dict(re.findall(r"(\w+)=(\S*)", line))
                index = re.search(r"GRES=gpu:1\(IDX:(\d+)\)", line)
                if fields.get("JobState") == "RUNNING" and fields.get("Partition") == "gpu":
                    running[fields["JobId"]] = (fields.get("Comment", ""),
                                                index.group(1) if index else None)
            if running:
                seconds = clock.tm_hour * 3600 + clock.tm_min * 60 + clock.tm_sec
                self.samples.append((seconds, running))

    def indices_at(self, comment, clock, slack=2):
        """The GPU indices of the jobs with this comment seen running within `slack` seconds
        of `clock` (HH:MM:SS, the time a log line was written)."""
        hours, minutes, seconds = map(int, clock.split(":"))
        when = hours * 3600 + minutes * 60 + seconds
        return {index for sampled, running in self.samples
                if min((sampled - when) % 86400, (when - sampled) % 86400) <= slack
                for job_comment, index in running.values() if job_comment == comment}

    def of(self, comment):
        """Every sample that saw a job with this comment: what a failed match shows."""
        return [(sampled, job_id, index) for sampled, running in self.samples
                for job_id, (job_comment, index) in running.items() if job_comment == comment]


def device_lines(workdir):
    """(job comment, CUDA_VISIBLE_DEVICES, device line) of every GPU rule's job log."""
    jobs = []
    for rule in GPU_RULES:
        for log in (workdir / "results" / "logs" / rule).rglob("*.log"):
            device = next(line for line in log.read_text().splitlines() if " device " in line)
            visible = re.search(r"CUDA_VISIBLE_DEVICES=(\S+?)[;)]", device).group(1)
            jobs.append((comment_of(rule, workdir / "results" / "logs" / rule, log),
                         visible, device))
    return jobs


def comment_of(rule, logs, log):
    """The plugin's job comment for the job that wrote `log`: results/logs/finetune/
    ft_all/n1/fold0.log was written by `rule_finetune_wildcards_ft_all_1_0_`."""
    parts = log.relative_to(logs).with_suffix("").parts
    if len(parts) == 1:  # results/logs/pretrain_source/source.log: a rule without wildcards
        return f"rule_{rule}"
    values = [part.removeprefix("n").removeprefix("fold") for part in parts]
    return f"rule_{rule}_wildcards_{'_'.join(values)}_"


def test_gpu_jobs_at_the_same_time_saw_different_gpus_and_said_which_device(slurm_study):
    jobs = device_lines(slurm_study["workdir"])
    assert len(jobs) == 1 + len(STRATEGIES) * 2 * 2 + 1  # pretrain, finetune+evaluate, source
    gpus = slurm_study["gpus"]
    for comment, visible, line in jobs:
        assert visible in {"0", "1"}, line  # the scheduler handed each job one GPU
        assert "device cpu (train.device: auto, and torch sees no CUDA device" in line
        # the GPU the job says it saw is the one the scheduler gave it when it said so
        assert gpus.indices_at(comment, line.split()[0]) == {visible}, (
            comment, line, gpus.of(comment))
    together = [sample for _, sample in gpus.samples if len(sample) > 1]
    assert together, f"no two GPU jobs ran at the same time: {gpus.samples}"
    for sample in together:
        indices = [index for _, index in sample.values()]
        assert None not in indices and len(set(indices)) == len(indices), sample


def test_a_cancelled_fine_tuning_job_resumes_and_finished_jobs_do_not_rerun(slurm_study):
    record = scheduler_record(slurm_study["cancelled_id"])
    assert record["JobState"] == "CANCELLED", record
    text = slurm_study["cancelled_log"].read_text()
    assert re.search(r"resuming from checkpoint .*: epoch [1-3] of 4 done, starting at epoch "
                     r"[2-4]", text), text
    assert "epoch 4/4 loss" in text
    for path, mtime in slurm_study["finished_before"].items():
        assert path.stat().st_mtime_ns == mtime, f"{path} was trained again"
    # the rerun trains the cancelled job and those the first run never started (it stopped
    # submitting at the cancellation), none that finished
    finetuned = [p for p in slurm_study["finished_before"] if "source" not in p.parts]
    rerun = finished_rules(slurm_study["second"])
    assert slurm_study["cancelled_model"] not in slurm_study["finished_before"]
    assert rerun.count("finetune") == len(STRATEGIES) * 2 - len(finetuned), rerun
    # scratch needs no source, so the cancellation may come before the source was submitted
    # (CI's first run on 2026-12-03): then the rerun trains it. A source job the first run had
    # started is waited for, never abandoned, so the rerun must leave a finished source alone.
    source = slurm_study["workdir"] / "results" / "models" / "source" / "model.pt"
    if source in slurm_study["finished_before"]:
        assert "pretrain_source" not in rerun, rerun
    else:
        assert "pretrain_source" not in submitted_rules(slurm_study["first"]), \
            "the first run submitted the source's training and left it unfinished"
        assert rerun.count("pretrain_source") == 1, rerun
    assert slurm_study["cancelled_model"].exists()


def test_a_requeued_fine_tuning_job_resumes_from_its_checkpoint_in_the_same_run(slurm_study):
    """sbatch --requeue (the shipped profile): a job SLURM sends back to the queue (here by
    `scontrol requeue`, as preemption does) runs again under the same id, resumes from its
    checkpoint, and the run that submitted it takes its result; the rerun leaves it alone."""
    requeued = slurm_study["requeued"]
    assert requeued["record"]["Restarts"] == "1", requeued["record"]
    assert requeued["record"]["JobState"] == "COMPLETED", requeued["record"]
    assert re.search(r"resuming from checkpoint .*: epoch [1-3] of 4 done, starting at epoch "
                     r"[2-4]", requeued["log"]), requeued["log"]
    assert "epoch 4/4 loss" in requeued["log"]
    model = requeued["model"]
    assert slurm_study["finished_before"][model] == model.stat().st_mtime_ns


def test_the_study_ends_with_the_tables_of_a_local_run(slurm_study):
    import pandas as pd

    results = slurm_study["workdir"] / "results"
    summary = pd.read_csv(results / "tables" / "summary.tsv", sep="\t")
    assert list(summary["strategy"].unique()) == STRATEGIES
    assert list(summary["region"][:3]) == ["WT", "TC", "ET"]
    regions = summary[summary["region"] != "ET_present"]  # ET again, on the subjects with ET
    assert len(regions) == len(STRATEGIES) * 1 * 3 and (regions["n"] == 4).all()
    comparisons = pd.read_csv(results / "tables" / "comparisons.tsv", sep="\t")
    assert set(comparisons["strategy"]) == {"ft_all"} and len(comparisons) == 3
    assert (results / "figures" / "learning_curve.png").stat().st_size > 10_000
    assert Path(results / "report.html").exists()
