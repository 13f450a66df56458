"""mHC's pre-aggregation in pure PyTorch: :class:`liger_kernel.backends.torch.mhc.MHCPreFunction`."""

from liger_kernel.backends.torch.mhc import MHCPreFunction

__all__ = ["MHCPreFunction"]
