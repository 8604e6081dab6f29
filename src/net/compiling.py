"""``torch.compile`` without a false CUDA line on a machine with no GPU.

Inductor loads ``torch.utils.cpp_extension``, which logs "No CUDA runtime is found, using
CUDA_HOME=..." wherever a CUDA toolkit (an ``nvcc``) is installed but no GPU is usable. Compiling
for the CPU needs no CUDA, so on such a machine that logger is kept to errors."""

from __future__ import annotations

import logging

import torch


def compile_quietly(fn, **compile_kwargs):
    """``torch.compile(fn, **compile_kwargs)``; without CUDA, torch's C++ extension logger is kept
    to errors first (the only warning it gives here is the CUDA_HOME one)."""
    if not torch.cuda.is_available():
        logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    return torch.compile(fn, **compile_kwargs)
