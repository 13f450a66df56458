import torch

pytest_plugins = ("pytester",)

# torch.testing imports torch.distributed lazily on first use; the in-process
# pytest sessions of test_plugin.py drop modules first imported inside them,
# and importing those again registers torch operators twice. Import them now.
torch.testing.assert_close(torch.ones(1), torch.ones(1))
