# Preprocessing, per subject: coregister -> extract brain -> correct bias -> Nyul ->
# register to the template -> normalise -> cache; QC per subject and per dataset. The images
# between the raw data and the cache are intermediate(): deleted once every job that reads
# them is done, unless preprocess.keep_intermediates (the label and brain mask on the native
# grid, the transforms and the QC stay: scoring on native grids reads them).


rule coregister_modalities:
    input:
        unpack(raw_files),
    output:
        image=intermediate(
            preprocessed("{dataset}", "{subject}", "coregistered.nii.gz")
        ),
        label=preprocessed("{dataset}", "{subject}", "label.nii.gz"),
    log:
        results("logs/coregister_modalities/{dataset}/{subject}.log"),
    benchmark:
        results("benchmarks/coregister_modalities/{dataset}/{subject}.tsv")
    conda:
        "../envs/imaging.yaml"
    threads: 1  # ANTs reproduces a seeded registration only single-threaded
    resources:
        mem_mb=2000,
    params:
        label_scheme=label_scheme,
        seed=config["seed"],
    script:
        "../workflow_scripts/coregister_modalities.py"


rule extract_brain:
    input:
        image=preprocessed("{dataset}", "{subject}", "coregistered.nii.gz"),
        given_mask=given_mask,
    output:
        preprocessed("{dataset}", "{subject}", "brain_mask.nii.gz"),
    log:
        results("logs/extract_brain/{dataset}/{subject}.log"),
    benchmark:
        results("benchmarks/extract_brain/{dataset}/{subject}.tsv")
    conda:
        "../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    params:
        method=brain_extraction_method,
    script:
        "../workflow_scripts/extract_brain.py"


rule correct_bias:
    input:
        image=preprocessed("{dataset}", "{subject}", "coregistered.nii.gz"),
        mask=preprocessed("{dataset}", "{subject}", "brain_mask.nii.gz"),
    output:
        image=intermediate(
            preprocessed("{dataset}", "{subject}", "bias_corrected.nii.gz")
        ),
        field=intermediate(preprocessed("{dataset}", "{subject}", "bias_field.nii.gz")),
    log:
        results("logs/correct_bias/{dataset}/{subject}.log"),
    benchmark:
        results("benchmarks/correct_bias/{dataset}/{subject}.tsv")
    conda:
        "../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=3000,
    params:
        method=config["preprocess"]["bias_correction"],
        fit_resolution_mm=config["preprocess"]["bias_fit_mm"],
    script:
        "../workflow_scripts/correct_bias.py"


rule fit_nyul:
    input:
        unpack(nyul_fitting_inputs),
    output:
        nyul_scales(),
    log:
        results(f"logs/fit_nyul/{SOURCE}.log"),
    benchmark:
        results(f"benchmarks/fit_nyul/{SOURCE}.tsv")
    conda:
        "../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    script:
        "../workflow_scripts/fit_nyul.py"


rule apply_nyul:
    input:
        image=preprocessed("{dataset}", "{subject}", "bias_corrected.nii.gz"),
        mask=preprocessed("{dataset}", "{subject}", "brain_mask.nii.gz"),
        scales=nyul_scales(),
    output:
        intermediate(preprocessed("{dataset}", "{subject}", "standardised.nii.gz")),
    log:
        results("logs/apply_nyul/{dataset}/{subject}.log"),
    benchmark:
        results("benchmarks/apply_nyul/{dataset}/{subject}.tsv")
    conda:
        "../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    script:
        "../workflow_scripts/apply_nyul.py"


rule prepare_template:
    output:
        template=results("template/template.nii.gz"),
        mask=results("template/template_mask.nii.gz"),
    log:
        results("logs/prepare_template/template.log"),
    benchmark:
        results("benchmarks/prepare_template/template.tsv")
    conda:
        "../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        spacing_mm=config["preprocess"]["spacing_mm"],
        template=config["preprocess"]["template"],
        template_mask=config["preprocess"]["template_mask"],
    script:
        "../workflow_scripts/prepare_template.py"


rule register_to_template:
    input:
        image=registration_input,
        mask=preprocessed("{dataset}", "{subject}", "brain_mask.nii.gz"),
        template=results("template/template.nii.gz"),
        template_mask=results("template/template_mask.nii.gz"),
    output:
        image=intermediate(preprocessed("{dataset}", "{subject}", "registered.nii.gz")),
        mask=intermediate(
            preprocessed("{dataset}", "{subject}", "brain_mask_template.nii.gz")
        ),
        transforms=directory(preprocessed("{dataset}", "{subject}", "transforms")),
        qc=preprocessed("{dataset}", "{subject}", "qc.json"),
    log:
        results("logs/register_to_template/{dataset}/{subject}.log"),
    benchmark:
        results("benchmarks/register_to_template/{dataset}/{subject}.tsv")
    conda:
        "../envs/imaging.yaml"
    # One thread: ANTs reproduces a seeded registration only single-threaded, and subjects
    # register in parallel instead.
    threads: 1
    resources:
        mem_mb=4000,
    params:
        transform=config["preprocess"]["registration"],
        seed=config["seed"],
    script:
        "../workflow_scripts/register_to_template.py"


rule normalise_intensity:
    input:
        image=preprocessed("{dataset}", "{subject}", "registered.nii.gz"),
        mask=preprocessed("{dataset}", "{subject}", "brain_mask_template.nii.gz"),
    output:
        intermediate(preprocessed("{dataset}", "{subject}", "normalised.nii.gz")),
    log:
        results("logs/normalise_intensity/{dataset}/{subject}.log"),
    benchmark:
        results("benchmarks/normalise_intensity/{dataset}/{subject}.tsv")
    conda:
        "../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        **intensity_params(),
    script:
        "../workflow_scripts/normalise_intensity.py"


rule cache_tensors:
    input:
        image=preprocessed("{dataset}", "{subject}", "normalised.nii.gz"),
        label=preprocessed("{dataset}", "{subject}", "label.nii.gz"),
        transforms=preprocessed("{dataset}", "{subject}", "transforms"),
        template_mask=results("template/template_mask.nii.gz"),
    output:
        image=cached("{dataset}", "{subject}", "image.npy"),
        label=cached("{dataset}", "{subject}", "label.npy"),
        meta=cached("{dataset}", "{subject}", "meta.json"),
    log:
        results("logs/cache_tensors/{dataset}/{subject}.log"),
    benchmark:
        results("benchmarks/cache_tensors/{dataset}/{subject}.tsv")
    conda:
        "../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        crop_shape=config["preprocess"]["crop_shape"],
        preprocessing=lambda wildcards: preprocessing_settings(wildcards.dataset),
    script:
        "../workflow_scripts/cache_tensors.py"


rule plot_preprocessing_qc:
    input:
        coregistered=preprocessed("{dataset}", "{subject}", "coregistered.nii.gz"),
        mask=preprocessed("{dataset}", "{subject}", "brain_mask.nii.gz"),
        bias_corrected=preprocessed("{dataset}", "{subject}", "bias_corrected.nii.gz"),
        registered=preprocessed("{dataset}", "{subject}", "registered.nii.gz"),
        template=results("template/template.nii.gz"),
        cache=cached("{dataset}", "{subject}", "meta.json"),
    output:
        preprocessed("{dataset}", "{subject}", "qc.png"),
    log:
        results("logs/plot_preprocessing_qc/{dataset}/{subject}.log"),
    benchmark:
        results("benchmarks/plot_preprocessing_qc/{dataset}/{subject}.tsv")
    conda:
        "../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    script:
        "../workflow_scripts/plot_preprocessing_qc.py"


rule summarise_qc:
    input:
        registration_qc_files,
    output:
        report(
            results("qc/{dataset}/preprocessing_qc.tsv"),
            caption="../report/preprocessing_qc.rst",
            category="2. Quality control",
            labels={"dataset": "{dataset}", "figure": "preprocessing QC table"},
        ),
    log:
        results("logs/summarise_qc/{dataset}.log"),
    benchmark:
        results("benchmarks/summarise_qc/{dataset}.tsv")
    conda:
        "../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        subjects=lambda wildcards: list(subject_rows(wildcards.dataset)),  # input's order
    script:
        "../workflow_scripts/summarise_qc.py"
