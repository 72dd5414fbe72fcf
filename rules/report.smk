# The study's answer: tables and figures over every model's scores; the HTML report
# (`snakemake --report`, written by the Snakefile's onsuccess handler after a run that
# completed the study: write_report_when_complete in common.smk) collects what is marked
# with report() here and in the QC rules.


rule aggregate_results:
    input:
        scores=per_model("metrics/{strategy}/n{size}/fold{fold}.tsv"),
        subjects=results(f"subjects/{TARGET}.tsv"),
        source=results("metrics/source.tsv"),
    output:
        summary=report(
            results("tables/summary.tsv"),
            caption="../report/summary.rst",
            category="1. Results",
            labels={"table": "all metrics"},
        ),
        overview=results("tables/dice.md"),
        by_grade=report(
            results("tables/summary_by_grade.tsv"),
            caption="../report/by_grade.rst",
            category="1. Results",
            labels={"table": "by grade"},
        ),
        tests=report(
            results("tables/wilcoxon.tsv"),
            caption="../report/wilcoxon.rst",
            category="1. Results",
            labels={"table": "paired tests"},
        ),
        tests_markdown=results("tables/wilcoxon.md"),
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
        "logs/aggregate_results/aggregate_results.log",
    benchmark:
        "benchmarks/aggregate_results/aggregate_results.tsv"
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
        "logs/plot_qualitative/plot_qualitative.log",
    benchmark:
        "benchmarks/plot_qualitative/plot_qualitative.tsv"
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
