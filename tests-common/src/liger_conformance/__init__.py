"""The shared conformance suite for liger-kernel backends."""
