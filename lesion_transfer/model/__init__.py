"""The 3D UNet and the transfer strategies."""

from lesion_transfer.model.strategies import STRATEGIES, Strategy, apply_strategy
from lesion_transfer.model.unet import UNet3D, UNetConfig

__all__ = ["STRATEGIES", "Strategy", "UNet3D", "UNetConfig", "apply_strategy"]
