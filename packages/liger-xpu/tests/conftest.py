import os

# Kernels run on the CPU under the Triton interpreter, which must be chosen
# before any kernel module is imported.
os.environ["TRITON_INTERPRET"] = "1"
