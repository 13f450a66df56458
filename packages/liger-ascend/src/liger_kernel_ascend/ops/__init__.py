"""NPU kernels of liger-ascend: one module per op that needs its own (the
backend's ``FUNCTIONS``; every other op runs its portable Triton kernel). The
dispatcher imports them on an op's first NPU call, after the backend's
prepare step (:func:`liger_kernel_ascend.safety.check_environment`)."""
