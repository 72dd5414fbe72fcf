"""The networks a study trains and transfers (unet, network, foreign frameworks' adapters)
and the transfer strategies. Nothing is imported here: the workflow reads the strategies' names
when it is parsed, and a parse must not import torch (seconds in every job; tests/test_workflow.py).
"""
