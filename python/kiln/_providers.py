"""Devices and ONNX Runtime-style execution providers."""

from __future__ import annotations

import ctypes
from typing import Sequence

from . import _capi
from ._errors import InvalidArgument, NotFound, check

VULKAN = "VulkanExecutionProvider"
CPU = "CPUExecutionProvider"

# ONNX Runtime providers Kiln does not have: a script listing them first falls through to the
# next, as it would with an onnxruntime build that lacks them.
_ORT_ONLY = {
    "CUDAExecutionProvider", "TensorrtExecutionProvider", "ROCMExecutionProvider", "MIGraphXExecutionProvider",
    "DmlExecutionProvider", "CoreMLExecutionProvider", "OpenVINOExecutionProvider", "DnnlExecutionProvider",
    "QNNExecutionProvider", "NnapiExecutionProvider", "XnnpackExecutionProvider", "WebGpuExecutionProvider",
    "AzureExecutionProvider", "ACLExecutionProvider", "ArmNNExecutionProvider", "VitisAIExecutionProvider",
    "CANNExecutionProvider", "NvTensorRTRTXExecutionProvider",
}


def devices() -> list[dict[str, str]]:
    """Every device Kiln can run on: Vulkan devices in preference order, then the CPU."""
    lib = _capi.lib
    out = ctypes.c_void_p()
    check(lib.kiln_device_list_create(ctypes.byref(out)))
    try:
        return [
            {
                "uri": _capi.text(lib.kiln_device_list_get_uri(out, i)) or "",
                "name": _capi.text(lib.kiln_device_list_get_name(out, i)) or "",
                "driver": _capi.text(lib.kiln_device_list_get_driver(out, i)) or "",
            }
            for i in range(lib.kiln_device_list_get_count(out))
        ]
    finally:
        lib.kiln_device_list_release(out)


def get_available_providers() -> list[str]:
    """The providers this machine offers, best first (ONNX Runtime's function)."""
    drivers = {device["driver"] for device in devices()}
    return ([VULKAN] if "vulkan" in drivers else []) + ([CPU] if "cpu" in drivers else [])


def get_device() -> str:
    """The device a session without providers runs on, as a Kiln URI ("vulkan:0", "cpu")."""
    listed = devices()
    return listed[0]["uri"] if listed else "none"


def _open(uri: str) -> int:
    out = ctypes.c_void_p()
    check(_capi.lib.kiln_device_open(uri.encode(), ctypes.byref(out)))
    return out.value


def resolve_device(providers: Sequence[str | tuple] | None, device: str | None) -> tuple[int, list[str]]:
    """Opens the device `device` names, else the first available of `providers`, else the best.
    Returns the device handle (the caller releases it) and the providers list to report."""
    if device is not None and not isinstance(device, str):
        raise InvalidArgument(f"device must be a Kiln device URI such as 'vulkan:0' or 'cpu', got {device!r}")
    if isinstance(providers, str):
        providers = [providers]
    if device is not None:
        handle = _open(device)
        driver = _capi.text(_capi.lib.kiln_device_get_driver(handle))
        return handle, [VULKAN if driver == "vulkan" else CPU]
    if not providers:
        handle = _open("auto")
        driver = _capi.text(_capi.lib.kiln_device_get_driver(handle))
        return handle, [VULKAN if driver == "vulkan" else CPU]
    available = {device["uri"] for device in devices()}
    drivers = {uri.split(":")[0] for uri in available}
    skipped = []
    for entry in providers:
        name = entry[0] if isinstance(entry, (tuple, list)) else entry
        if not isinstance(name, str):
            raise InvalidArgument(f"a provider must be a name or a (name, options) pair, got {entry!r}")
        if name == VULKAN:
            if "vulkan" in drivers:
                return _open("vulkan"), [VULKAN]
        elif name == CPU:
            return _open("cpu"), [CPU]
        elif name in _ORT_ONLY:
            pass
        elif name == "cpu" or name.startswith("vulkan"):
            try:
                handle = _open(name)
            except NotFound:
                skipped.append(name)
                continue
            driver = _capi.text(_capi.lib.kiln_device_get_driver(handle))
            return handle, [VULKAN if driver == "vulkan" else CPU]
        else:
            raise InvalidArgument(
                f"unknown provider {name!r} (Kiln offers {', '.join(get_available_providers())}, "
                "or a device URI such as 'vulkan:0' or 'cpu')"
            )
        skipped.append(name)
    raise NotFound(
        f"none of the providers {', '.join(skipped)} is available here (available: {', '.join(get_available_providers())})"
    )
