"""Run it the way users do, on copies of one complete tiny study: what a change reruns, a
killed job resumed by Snakemake, GPU jobs on GPUs of their own, the cluster profiles."""

import os
import re
import signal
import subprocess
import sys
import time

import pytest
import yaml
from conftest import REPO, copy_study, run_snakemake

pytestmark = pytest.mark.workflow

PREPROCESSING = {"synthesize_cohort", "ingest_dataset", "make_splits", "coregister_modalities",
                 "extract_brain", "correct_bias", "fit_nyul", "apply_nyul", "prepare_template",
                 "register_to_template", "normalise_intensity", "cache_tensors"}
# configs/ci.yaml's train.strategies (strategies and controls)
ARMS = len(yaml.safe_load((REPO / "configs" / "ci.yaml").read_text())["train"]["strategies"])


@pytest.fixture
def study(ci_study, tmp_path):
    return copy_study(ci_study, tmp_path / "study")


def overlay(path, edit):
    """configs/ci.yaml with one edit, as a config file of its own."""
    config = yaml.safe_load((REPO / "configs" / "ci.yaml").read_text())
    edit(config)
    path.write_text(yaml.safe_dump(config))
    return path


def planned_jobs(workdir, configfile, *args):
    """{rule: count} of what Snakemake would run now (a dry run)."""
    result = run_snakemake(workdir, "-n", *args, configfile=configfile)
    output = result.stdout + result.stderr
    if "Nothing to be done" in output:
        return {}
    table = output.split("Job stats:")[1].split("total")[0]
    return {m[0]: int(m[1]) for m in re.findall(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)}


def test_a_plot_setting_reruns_only_the_tables_figures_and_report(study, tmp_path):
    config = overlay(tmp_path / "c.yaml", lambda c: c.setdefault("report", {}).update(dpi=90))
    assert planned_jobs(study, config) == {"aggregate_results": 1, "plot_qualitative": 1,
                                           "all": 1}


def test_fine_tuning_epochs_rerun_fine_tuning_and_evaluation_only(study, tmp_path):
    config = overlay(tmp_path / "c.yaml", lambda c: c["train"]["finetune"].update(epochs=3))
    jobs = planned_jobs(study, config)
    models = ARMS * 2 * 2 * 2  # arms x sizes x folds x repeats
    for rule in ("finetune", "evaluate_model"):
        assert jobs.pop(rule) == models, rule
    assert jobs == {"make_submission": ARMS * 2, "aggregate_results": 1, "plot_qualitative": 1,
                    "all": 1}


def test_a_new_training_size_adds_only_its_jobs_and_the_aggregation(study, tmp_path):
    config = overlay(tmp_path / "c.yaml", lambda c: c["splits"].update(sizes=[1, 2, 3]))
    jobs = planned_jobs(study, config)
    assert not PREPROCESSING & set(jobs) and "pretrain_source" not in jobs
    assert "pretrain_control" not in jobs
    new_models = ARMS * 2 * 2  # arms x folds x repeats at size 3
    assert jobs == {"finetune": new_models, "evaluate_model": new_models, "make_submission": ARMS,
                    "aggregate_results": 1, "all": 1}


def test_another_repeat_adds_only_its_runs_and_keeps_the_trained_ones(study, tmp_path):
    """train.repeats 2 -> 3: the third run of every arm, size and fold is trained and
    evaluated; the first two keep their models (nothing before training moves)."""
    config = overlay(tmp_path / "c.yaml", lambda c: c["train"].update(repeats=3))
    jobs = planned_jobs(study, config)
    new_models = ARMS * 2 * 2  # arms x sizes x folds, repeat 2
    assert jobs == {"finetune": new_models, "evaluate_model": new_models,
                    "make_submission": ARMS * 2, "aggregate_results": 1, "all": 1}


def test_editing_workflow_scripts_and_rules_reruns_nothing(study):
    touched = [REPO / "workflow_scripts" / "finetune.py", REPO / "workflow_scripts" /
               "correct_bias.py", REPO / "lesion_transfer" / "report" / "figures.py"]
    times = {path: path.stat() for path in touched}
    try:
        for path in touched:
            os.utime(path)
        assert planned_jobs(study, REPO / "configs" / "ci.yaml") == {}
    finally:
        for path, stat in times.items():
            os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def snakemake_command(workdir, configfile, *args):
    return [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
            "--directory", str(workdir), "--nolock", "--configfile", str(configfile), *args]


def text_of(log):
    """A log being written, or "" before it exists (Snakemake removes a job's old log as the
    job starts: between a check that it exists and the read it may vanish)."""
    try:
        return log.read_text()
    except FileNotFoundError:
        return ""


def test_a_killed_fine_tuning_job_resumes_from_its_checkpoint(study, tmp_path):
    longer = overlay(tmp_path / "c.yaml", lambda c: c["train"]["finetune"].update(
        epochs=4, iterations_per_epoch=15))
    first, killed = ("results/models/scratch/n1/fold0/model.pt",
                     "results/models/ft_all/n1/fold0/model.pt")
    log = study / "results" / "logs" / "finetune" / "ft_all" / "n1" / "fold0.log"
    run_snakemake(study, "--cores", "1", first, configfile=longer)  # this one finishes
    finished = (study / first).stat().st_mtime_ns
    command = snakemake_command(study, longer, "--cores", "1", first, killed)
    with open(tmp_path / "first.out", "w") as out:
        run = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                               start_new_session=True)
        deadline = time.time() + 300
        while time.time() < deadline:
            # epoch 3's progress bar starts after epoch 2's checkpoint is written (its loss
            # line comes before the checkpoint: a kill there resumes after epoch 1)
            if "epoch 3:" in text_of(log):
                break
            assert run.poll() is None, (tmp_path / "first.out").read_text()[-3000:]
            time.sleep(0.1)
        os.killpg(run.pid, signal.SIGKILL)  # the node is lost: Snakemake and its job
        run.wait()
    assert not (study / killed).exists()
    again = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    text = log.read_text()
    assert re.search(r"resuming from checkpoint .*: epoch [23] of 4 done, starting at epoch [34]",
                     text), text
    assert "epoch 4/4 loss" in text and "epoch 1/4 loss" not in text
    assert (study / first).stat().st_mtime_ns == finished  # the finished job did not run again
    assert "Rule: finetune" in again.stderr and again.stderr.count("Rule: finetune") == 1


def test_a_plain_rerun_restores_the_model_a_killed_forced_job_removed(study, tmp_path):
    """`--force` removes a model before its job runs; the job is killed (a lost node), so the
    study's tables cite a model that is gone: a plain rerun trains it again and evaluates it,
    and then has nothing left to do."""
    config = REPO / "configs" / "ci.yaml"
    model = study / "results" / "models" / "ft_all" / "n1" / "fold0_repeat1" / "model.pt"
    log = study / "results" / "logs" / "finetune" / "ft_all" / "n1" / "fold0_repeat1.log"
    log.unlink()
    command = snakemake_command(study, config, "--cores", "1", "--force",
                                str(model.relative_to(study)))
    with open(tmp_path / "forced.out", "w") as out:
        run = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                               start_new_session=True)
        deadline = time.time() + 300
        while not log.exists() and time.time() < deadline:  # the job has started
            assert run.poll() is None, (tmp_path / "forced.out").read_text()[-3000:]
            time.sleep(0.05)
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
    assert not model.exists()
    planned = planned_jobs(study, config)
    assert planned.get("finetune") == 1 and planned.get("evaluate_model") == 1, planned
    run_snakemake(study, configfile=config)  # the README's command, plain
    assert model.exists() and "epoch 2/2 loss" in log.read_text()
    assert planned_jobs(study, config) == {}


def test_a_report_that_cannot_be_written_fails_the_run_with_snakemakes_reason(study, tmp_path):
    """The run ends by writing results/report.html: when Snakemake cannot (here its report
    module finds no pygments, as after an install without it), the run fails and says why."""
    config = REPO / "configs" / "ci.yaml"
    (study / "results" / "report.html").unlink()
    (study / "results" / "figures" / "qualitative.png").unlink()  # one job to run, then report
    no_pygments = tmp_path / "no_pygments"
    (no_pygments / "pygments").mkdir(parents=True)
    (no_pygments / "pygments" / "__init__.py").write_text(
        "raise ImportError('pygments is not installed (a test hides it)')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(no_pygments), *filter(None, [os.environ.get("PYTHONPATH")])])}
    result = run_snakemake(study, configfile=config, check=False, env=env)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "the HTML report failed:" in result.stderr
    assert "Python package pygments must be installed to create reports" in result.stderr, \
        result.stderr[-3000:]
    assert (study / "results" / "figures" / "qualitative.png").exists()
    assert not (study / "results" / "report.html").exists()


def test_gpu_jobs_started_together_get_gpus_of_their_own(study, tmp_path):
    config = overlay(tmp_path / "c.yaml", lambda c: c["train"].update(device="auto"))
    targets = [f"results/models/ft_all/n{size}/fold0/model.pt" for size in (1, 2)]
    env = {**os.environ, "LESION_TRANSFER_FAKE_GPUS": "2",
           "TMPDIR": str(tmp_path)}  # the GPU locks of this test only
    # targets first: --resources and --forcerun take every word that follows them
    run_snakemake(study, *targets, "--resources", "gpu=2", "--forcerun", "finetune",
                  configfile=config, env=env)
    claimed = []
    for size in (1, 2):
        text = (study / "results" / "logs" / "finetune" / "ft_all" / f"n{size}"
                / "fold0.log").read_text()
        claimed += re.findall(r"claimed GPU (\d) of 2", text)
    assert sorted(claimed) == ["0", "1"]


class PluginResources(dict):
    """A job's resources as the SLURM plugin reads them: attributes and get(), integers."""

    def get(self, key, default=None):
        value = super().get(key, default)
        return int(value) if isinstance(value, str) and value.isdigit() else value

    __getattr__ = get


def test_the_slurm_profile_gives_every_gpu_job_its_gpu_and_passes_the_plugin(study):
    from types import SimpleNamespace

    from snakemake_executor_plugin_slurm.utils import set_gres_string
    from snakemake_executor_plugin_slurm.validation import validate_slurm_extra
    from snakemake_executor_plugin_slurm_jobstep import get_cpu_setting

    result = run_snakemake(study, "-n", "--verbose", "--forcerun", "finetune", "--profile",
                           str(REPO / "profiles" / "slurm"),
                           configfile=REPO / "configs" / "ci.yaml")
    jobs = re.findall(r"^(?:local)?rule (\w+):\n(?:    .*\n)*?    resources: (.*)$",
                      result.stdout + result.stderr, re.MULTILINE)
    gpu_rules = {"finetune", "evaluate_model"}
    assert gpu_rules <= {rule for rule, _ in jobs}
    for rule, described in jobs:
        resources = dict(item.split("=", 1) for item in described.split(", "))
        if rule in gpu_rules:
            assert resources["gpu"] == "1" and resources["slurm_partition"] == "gpu", rule
            job = SimpleNamespace(resources=PluginResources(resources), threads=1)
            assert set_gres_string(job).strip() == "--gpus=1"
            assert get_cpu_setting(job, True).strip() == \
                f"--cpus-per-gpu={resources['cpus_per_gpu']}"
            validate_slurm_extra(job)
        elif rule != "all":
            assert resources.get("gpu", "0") == "0" and resources["slurm_partition"] == "cpu"


def test_the_cluster_generic_profile_builds_the_dag(study):
    result = run_snakemake(study, "-n", "--forcerun", "evaluate_model", "--profile",
                           str(REPO / "profiles" / "cluster-generic"),
                           configfile=REPO / "configs" / "ci.yaml")
    assert "evaluate_model" in result.stdout + result.stderr
