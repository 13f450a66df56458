"""mHC's coefficients in pure PyTorch: :class:`liger_kernel.backends.torch.mhc.MHCCoeffsFunction`."""

from liger_kernel.backends.torch.mhc import MHCCoeffsFunction

__all__ = ["MHCCoeffsFunction"]
