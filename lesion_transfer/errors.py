"""The one base of every refusal: a bad input, setting or file, named in its message.

A workflow script (`workflow.rule_log`) and the Snakefile show a refusal as its message alone,
once, and stop: the message says which file or config key, what was expected and what was
found, so a traceback would only bury it. Anything else is a bug and keeps its traceback.
"""


class Refusal(ValueError):
    """Raised for input the study cannot use; the message is all the user needs."""
