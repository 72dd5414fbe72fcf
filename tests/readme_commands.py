"""The README's commands, read from the README itself.

`.ci/run` runs the set-up's test command through this, and tests/test_setup.py dry-runs the
main and SLURM commands, so what the README tells a new user is exactly what CI checks.

    python tests/readme_commands.py main|test|slurm      # prints that command
"""

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _first_bash_block_after(heading):
    text = README.read_text()
    if heading not in text:
        raise LookupError(f"{README}: no '{heading}' to read the commands from")
    block = re.search(r"```bash\n(.*?)```", text.split(heading, 1)[1], re.DOTALL)
    # a comment starts at two spaces and a '#'; the commands themselves hold none
    return [line.split("  #", 1)[0].strip() for line in block.group(1).splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def every_snakemake_command():
    """Every `snakemake ...` command the README shows, in code spans or bash blocks, each
    once, in order, with its line breaks as spaces."""
    text = README.read_text()
    spans = re.findall(r"`(snakemake [^`]*)`", text)
    blocks = [line for block in re.findall(r"```bash\n(.*?)```", text, re.DOTALL)
              for line in block.splitlines()]
    commands = [part.split("  #", 1)[0].strip() for line in blocks
                for part in line.split(" && ") if part.strip().startswith("snakemake ")]
    return list(dict.fromkeys(" ".join(c.split()) for c in commands + spans))


def readme_command(name):
    """`main` (the study on phantoms), `test` (the test suite), `slurm` (the study on SLURM)."""
    if name == "slurm":
        return _first_bash_block_after("**SLURM**")[0]
    main, test = _first_bash_block_after("## Set-up: two commands")
    return {"main": main, "test": test}[name]


if __name__ == "__main__":
    print(readme_command(sys.argv[1]))
