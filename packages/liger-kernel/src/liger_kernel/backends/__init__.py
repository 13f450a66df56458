"""Backends that ship inside liger-kernel (only the pure-PyTorch one)."""
