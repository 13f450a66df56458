"""Backends that ship inside liger-core (only the pure-PyTorch one)."""
