"""Contract tests, one module per op, run by ``pytest --pyargs liger_conformance``."""
