"""mHC's post and residual mix in pure PyTorch: :class:`liger_kernel.backends.torch.mhc.MHCPostResFunction`."""

from liger_kernel.backends.torch.mhc import MHCPostResFunction

__all__ = ["MHCPostResFunction"]
