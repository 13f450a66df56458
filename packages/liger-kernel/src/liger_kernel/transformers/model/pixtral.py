"""Pixtral: liger-kernel 0.8.5's module of this name defines nothing; Pixtral's vision
encoder has no head, and ``apply_liger_kernel_to_pixtral`` patches its modules only."""
