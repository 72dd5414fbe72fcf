# The study's answer: tables and figures over every model's scores; the HTML report
# (`snakemake --report`, written by the Snakefile's onsuccess handler after a run that
# completed the study: write_report_when_complete in common.smk) collects what is marked
# with report() here and in the QC rules. The report opens on the paper's claims, judged
# (written by aggregate_results), once they exist.


report: report_opening_page()


rule aggregate_results:
    input:
        scores=per_model("metrics/native/{strategy}/n{size}/fold{fold}{repeat}.tsv"),
        template_scores=per_model(
            "metrics/template/{strategy}/n{size}/fold{fold}{repeat}.tsv"
        ),
        subjects=results(f"subjects/{TARGET}.tsv"),
        source=results("metrics/source.tsv"),
    output:
        summary=report(
            results("tables/summary.tsv"),
            caption="../report/summary.rst",
            category="1. Results",
            labels={"table": "all metrics"},
        ),
        summary_template=report(
            results("tables/summary_template_space.tsv"),
            caption="../report/summary_template.rst",
            category="1. Results",
            labels={"table": "all metrics, template space"},
        ),
        overview=results("tables/dice.md"),
        claims=results("tables/claims.md"),
        claims_report=results("tables/claims.rst"),
        claims_tests=report(
            results("tables/claims_tests.tsv"),
            caption="../report/claims_tests.rst",
            category="1. Results",
            labels={"table": "comparisons behind the claims"},
        ),
        by_grade=report(
            results("tables/summary_by_grade.tsv"),
            caption="../report/by_grade.rst",
            category="1. Results",
            labels={"table": "by grade"},
        ),
        calibration=results("tables/calibration.tsv"),
        comparisons=report(
            results("tables/comparisons.tsv"),
            caption="../report/comparisons.rst",
            category="1. Results",
            labels={"table": "comparisons over runs"},
        ),
        comparisons_markdown=results("tables/comparisons.md"),
        source=report(
            results("tables/source.tsv"),
            caption="../report/source.rst",
            category="1. Results",
            labels={"table": "source model"},
        ),
        learning_curve=report(
            results("figures/learning_curve.png"),
            caption="../report/learning_curve.rst",
            category="1. Results",
            labels={"figure": "learning curve"},
        ),
    log:
        results("logs/aggregate_results/aggregate_results.log"),
    benchmark:
        results("benchmarks/aggregate_results/aggregate_results.tsv")
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        report=report_params(),
    script:
        "../workflow_scripts/aggregate_results.py"


rule plot_qualitative:
    input:
        unpack(qualitative_inputs),
    output:
        report(
            results("figures/qualitative.png"),
            caption="../report/qualitative.rst",
            category="1. Results",
            labels={"figure": "qualitative panels"},
        ),
    log:
        results("logs/plot_qualitative/plot_qualitative.log"),
    benchmark:
        results("benchmarks/plot_qualitative/plot_qualitative.tsv")
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        report=report_params(),
        size=SIZES[0],
    script:
        "../workflow_scripts/plot_qualitative.py"
