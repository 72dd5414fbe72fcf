"""The preprocessing chain, one module per stage (see docs/ARCHITECTURE.md):

coregister -> brain -> bias -> nyul -> register -> normalise -> cache (and back: to_native).
Every function takes and returns arrays with their NIfTI affines; only this package talks to
ANTs, so the training stages never need the imaging stack.
"""

from lesion_transfer.preprocess.cache import to_native

__all__ = ["to_native"]
