"""pytest plugin: tests/test_dtype_device.py with its float64 side on the GPU.

That file runs every technique twice, with a float32 model and input and with float64 copies made
by ``.double()``, and checks the dtype and device of every float64 result and its closeness to the
float32 one. With this plugin (``pytest -p float64_on_cuda``, tests/gpu on the path) ``.double()``
also moves tensors and modules to CUDA, and ``check`` expects CUDA: so every technique runs with
model and input on the GPU and is compared with the same computation on the CPU (``close``
compares on the CPU with the file's own tolerances: TF32 applies to float32 work only).
Where a test makes its float64 input with ``.to(torch.float64)`` the input stays on the CPU while
the model is on the GPU; such results may rightly stay on the CPU, so read a device failure there
with that in mind.
"""
import pytest
import torch

CUDA = torch.device("cuda", 0)         # results report cuda:0, which is not equal to "cuda"
_tensor_double, _module_double = torch.Tensor.double, torch.nn.Module.double


def _to_cuda_tensor(self, memory_format=torch.preserve_format):
    return _tensor_double(self, memory_format=memory_format).to(CUDA)


def _to_cuda_module(self):
    return _module_double(self).to(CUDA)


def pytest_configure(config):
    if not torch.cuda.is_available():
        raise pytest.UsageError("float64_on_cuda: no CUDA device here")
    torch.Tensor.double = _to_cuda_tensor
    torch.nn.Module.double = _to_cuda_module


def pytest_collection_modifyitems(session, config, items):
    for module in {item.module for item in items if item.module.__name__.endswith("test_dtype_device")}:
        module.CPU = CUDA
        module.check.__kwdefaults__ = {"dtype": module.F64, "device": CUDA}
        module.close = _close_on_cpu


def _close_on_cpu(a64, a32, atol=1e-5, rtol=1e-4):
    torch.testing.assert_close(a64.cpu(), a32.cpu().to(torch.float64), atol=atol, rtol=rtol)
