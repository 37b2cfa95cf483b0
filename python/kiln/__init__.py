"""Kiln from Python: ONNX Runtime's InferenceSession API over Kiln's compiler and runtime.

    import kiln as ort   # where a script said: import onnxruntime as ort
    session = ort.InferenceSession("model.onnx", providers=["VulkanExecutionProvider", "CPUExecutionProvider"])
    outputs = session.run(None, {session.get_inputs()[0].name: x})

See docs/python.md.
"""

from __future__ import annotations

from . import _capi
from ._compile import compile, compile_bytes
from ._errors import (
    DeviceError,
    InternalError,
    InvalidArgument,
    InvalidModel,
    KilnError,
    KilnIOError,
    NotFound,
    VersionError,
    check as _check,
)
from ._providers import devices, get_available_providers, get_device
from ._session import InferenceSession, NodeArg

_check(_capi.lib.kiln_check_version(_capi.API_VERSION))

__version__: str = _capi.text(_capi.lib.kiln_get_version()) or "0"

__all__ = [
    "InferenceSession",
    "NodeArg",
    "compile",
    "compile_bytes",
    "devices",
    "get_available_providers",
    "get_device",
    "KilnError",
    "InvalidArgument",
    "NotFound",
    "InvalidModel",
    "DeviceError",
    "VersionError",
    "KilnIOError",
    "InternalError",
    "__version__",
]
