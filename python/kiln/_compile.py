"""`kiln.compile`: the `kiln compile` command as a function."""

from __future__ import annotations

import ctypes
import os
from typing import Iterable, Mapping

from . import _capi
from ._errors import InvalidArgument, check


def _options(
    targets: Iterable[str] | None = None,
    vulkan_classes: Iterable[str] | None = None,
    cpu_variants: Iterable[str] | None = None,
    precision: str | None = None,
    input_shapes: Mapping[str, Iterable[int]] | None = None,
    memory_budget: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    cache: bool = True,
    spirv_opt: bool = False,
    model_name: str | None = None,
) -> int:
    lib = _capi.lib
    handle = ctypes.c_void_p()
    check(lib.kiln_compile_options_create(ctypes.byref(handle)))

    def put(key: str, value: str) -> None:
        check(lib.kiln_compile_options_set(handle, key.encode(), value.encode()))

    try:
        if isinstance(targets, str) or isinstance(vulkan_classes, str) or isinstance(cpu_variants, str):
            raise InvalidArgument("targets, vulkan_classes and cpu_variants take lists of names")
        if targets:
            put("target", ",".join(targets))
        if vulkan_classes:
            put("vulkan-class", ",".join(vulkan_classes))
        if cpu_variants:
            put("cpu-variant", ",".join(cpu_variants))
        if precision:
            put("precision", precision)
        for name, shape in (input_shapes or {}).items():
            put("input-shape", f"{name}=" + ",".join(str(int(d)) for d in shape))
        if memory_budget is not None:
            put("memory-budget", str(int(memory_budget)))
        if cache_dir is not None:
            put("cache-dir", os.fspath(cache_dir))
        put("cache", "on" if cache else "off")
        put("spirv-opt", "on" if spirv_opt else "off")
        if model_name:
            put("model-name", model_name)
    except BaseException:
        lib.kiln_compile_options_release(handle)
        raise
    return handle.value


def compile(model: str | os.PathLike, output: str | os.PathLike | None = None, **options) -> str:
    """Compiles the ONNX model at `model` into a bundle at `output` (default: the model's path
    with .kiln) and returns its path. Options are `kiln compile`'s: targets=["vulkan", "cpu"],
    vulkan_classes, cpu_variants, precision="fp16", input_shapes={name: shape}, memory_budget,
    cache_dir, cache=True, spirv_opt=False, model_name."""
    model = os.fspath(model)
    output = os.fspath(output) if output is not None else os.path.splitext(model)[0] + ".kiln"
    handle = _options(**options)
    try:
        check(_capi.lib.kiln_compile_file(model.encode(), handle, output.encode()))
    finally:
        _capi.lib.kiln_compile_options_release(handle)
    return output


def compile_bytes(model: bytes, **options) -> bytes:
    """Compiles a serialised ONNX model (no external data) and returns the bundle's bytes."""
    handle = _options(**options)
    blob = ctypes.c_void_p()
    try:
        check(_capi.lib.kiln_compile_bytes(model, len(model), handle, ctypes.byref(blob)))
    finally:
        _capi.lib.kiln_compile_options_release(handle)
    try:
        return ctypes.string_at(_capi.lib.kiln_blob_get_data(blob), _capi.lib.kiln_blob_get_size(blob))
    finally:
        _capi.lib.kiln_blob_release(blob)
