"""`InferenceSession`: ONNX Runtime's session API over Kiln's C API."""

from __future__ import annotations

import ctypes
import os
import tempfile
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from . import _capi
from ._errors import InvalidArgument, check
from ._providers import resolve_device

# kiln_dtype codes (ONNX TensorProto) -> numpy dtype and ONNX Runtime's type string.
_DTYPES: dict[int, tuple[Any, str]] = {
    1: (np.float32, "tensor(float)"),
    2: (np.uint8, "tensor(uint8)"),
    3: (np.int8, "tensor(int8)"),
    4: (np.uint16, "tensor(uint16)"),
    5: (np.int16, "tensor(int16)"),
    6: (np.int32, "tensor(int32)"),
    7: (np.int64, "tensor(int64)"),
    9: (np.bool_, "tensor(bool)"),
    10: (np.float16, "tensor(float16)"),
    11: (np.float64, "tensor(double)"),
    12: (np.uint32, "tensor(uint32)"),
    13: (np.uint64, "tensor(uint64)"),
}
_ORT_NAMES = {np.dtype(numpy_type): name for numpy_type, name in _DTYPES.values()}

_BUNDLE_MAGIC = b"KILNBNDL"


class NodeArg:
    """An input or output: `.name`, `.shape` (ints; strings for symbolic or data-decided
    extents) and `.type` (ONNX Runtime's string, e.g. 'tensor(float)')."""

    def __init__(self, name: str, shape: list[int | str], type: str) -> None:
        self.name = name
        self.shape = shape
        self.type = type

    def __repr__(self) -> str:
        return f"NodeArg(name={self.name!r}, type={self.type!r}, shape={self.shape!r})"


class _Tensor:
    """What the session knows of one input or output."""

    def __init__(self, handle: int, io: int, index: int) -> None:
        lib = _capi.lib
        self.index = index
        self.name = _capi.text(lib.kiln_session_get_name(handle, io, index)) or ""
        code = lib.kiln_session_get_dtype(handle, io, index)
        dtype_name = _capi.text(lib.kiln_session_get_dtype_name(handle, io, index)) or "unknown"
        self.numpy_dtype = np.dtype(_DTYPES[code][0]) if code in _DTYPES else None
        self.type = _DTYPES[code][1] if code in _DTYPES else f"tensor({dtype_name})"
        self.dtype_name = dtype_name
        self.code = code
        self.rank = lib.kiln_session_get_rank(handle, io, index)
        self.max_shape: list[int] = []
        self.shape: list[int | str] = []
        for axis in range(self.rank):
            extent = lib.kiln_session_get_dim(handle, io, index, axis)
            symbol = _capi.text(lib.kiln_session_get_dim_name(handle, io, index, axis))
            self.shape.append(symbol if symbol is not None else int(extent))
        self.max_bytes = lib.kiln_session_get_max_bytes(handle, io, index)
        # An axis the data decides (at most one per output) holds at most what the byte budget leaves.
        item = self.numpy_dtype.itemsize if self.numpy_dtype is not None else 1
        static = int(np.prod([value for value in self.shape if isinstance(value, int)], dtype=np.int64))
        self.max_shape = [
            value if isinstance(value, int) else (self.max_bytes // item // static if static else 0) for value in self.shape
        ]

    def node_arg(self) -> NodeArg:
        return NodeArg(self.name, list(self.shape), self.type)


def _is_bundle(data: bytes) -> bool:
    return data[: len(_BUNDLE_MAGIC)] == _BUNDLE_MAGIC


class InferenceSession:
    """Runs a Kiln bundle (or an ONNX model, compiled on load through the kernel cache).

    `providers` takes ONNX Runtime's names ("VulkanExecutionProvider", "CPUExecutionProvider";
    others, such as "CUDAExecutionProvider", are skipped as unavailable) and Kiln device URIs
    ("vulkan:0", "cpu"); the first available wins. `device` names a Kiln device directly.
    Other keyword options are `kiln compile` options for ONNX models (precision="fp16",
    cache_dir=..., input_shapes={"x": [1, 3, 224, 224]}).

    Thread-safety: `run` may be called from several threads; runs of one session are serialised
    by Kiln, and the GIL is released while a run waits.
    """

    def __init__(
        self,
        path_or_bytes: str | bytes | os.PathLike,
        sess_options: Any = None,
        providers: Sequence[str | tuple[str, dict]] | None = None,
        provider_options: Sequence[dict] | None = None,
        device: str | None = None,
        **options: Any,
    ) -> None:
        self._handle = None
        self._device = None
        self._device, self._providers = resolve_device(providers, device)
        driver = _capi.text(_capi.lib.kiln_device_get_driver(self._device))
        if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
            data = bytes(path_or_bytes)
            if _is_bundle(data):
                self._load_bytes(data)
            else:
                from ._compile import compile_bytes

                self._load_bytes(compile_bytes(data, targets=[driver], **options))
            return
        path = os.fspath(path_or_bytes)
        if not isinstance(path, str):
            raise InvalidArgument(f"expected a path or bytes, got {type(path_or_bytes).__name__}")
        with open(path, "rb") as handle:
            head = handle.read(len(_BUNDLE_MAGIC))
        if head == _BUNDLE_MAGIC:
            self._load_file(path)
            return
        from ._compile import compile

        with tempfile.TemporaryDirectory(prefix="kiln-") as folder:
            bundle = os.path.join(folder, "model.kiln")
            compile(path, bundle, targets=[driver], **options)
            self._load_file(bundle)

    def _load_file(self, path: str) -> None:
        out = ctypes.c_void_p()
        check(_capi.lib.kiln_session_create_from_file(self._device, path.encode(), ctypes.byref(out)))
        self._adopt(out.value)

    def _load_bytes(self, data: bytes) -> None:
        out = ctypes.c_void_p()
        check(_capi.lib.kiln_session_create_from_bytes(self._device, data, len(data), ctypes.byref(out)))
        self._adopt(out.value)

    def _adopt(self, handle: int | None) -> None:
        self._handle = handle
        lib = _capi.lib
        self._inputs = [_Tensor(handle, _capi.INPUT, i) for i in range(lib.kiln_session_get_count(handle, _capi.INPUT))]
        self._outputs = [_Tensor(handle, _capi.OUTPUT, i) for i in range(lib.kiln_session_get_count(handle, _capi.OUTPUT))]
        self._output_index = {tensor.name: tensor.index for tensor in self._outputs}
        self.program = _capi.text(lib.kiln_session_get_program(handle))
        self.device = _capi.text(_capi.lib.kiln_device_get_uri(self._device))

    def __del__(self) -> None:
        lib = getattr(_capi, "lib", None)
        if lib is None:
            return
        if getattr(self, "_handle", None):
            lib.kiln_session_release(self._handle)
            self._handle = None
        if getattr(self, "_device", None):
            lib.kiln_device_release(self._device)
            self._device = None

    def get_inputs(self) -> list[NodeArg]:
        return [tensor.node_arg() for tensor in self._inputs]

    def get_outputs(self) -> list[NodeArg]:
        return [tensor.node_arg() for tensor in self._outputs]

    def get_providers(self) -> list[str]:
        return list(self._providers)

    def get_provider_options(self) -> dict[str, dict]:
        return {name: {} for name in self._providers}

    def get_modelmeta(self) -> Any:
        return _ModelMeta(_capi.text(_capi.lib.kiln_session_get_model_name(self._handle)) or "")

    def run(
        self,
        output_names: Iterable[str] | None,
        input_feed: Mapping[str, Any],
        run_options: Any = None,
    ) -> list[np.ndarray]:
        """Runs the model; returns the outputs named (all, in order, for None) as ndarrays."""
        if not isinstance(input_feed, Mapping):
            raise InvalidArgument(f"input_feed must be a dict of name -> array, got {type(input_feed).__name__}")
        known = {tensor.name for tensor in self._inputs}
        unknown = [name for name in input_feed if name not in known]
        if unknown:
            raise InvalidArgument(
                f"unknown input name {unknown[0]!r} (the model's inputs: {', '.join(sorted(known))})"
            )
        wanted = list(output_names) if output_names else [tensor.name for tensor in self._outputs]
        for name in wanted:
            if name not in self._output_index:
                raise InvalidArgument(
                    f"unknown output name {name!r} (the model's outputs: {', '.join(t.name for t in self._outputs)})"
                )
        inputs = (_capi.Tensor * max(len(self._inputs), 1))()
        keep: list[Any] = []
        for slot, tensor in enumerate(self._inputs):
            if tensor.name not in input_feed:
                raise InvalidArgument(f"missing input {tensor.name!r} ({tensor.type} {tensor.shape})")
            array = self._as_input(tensor, input_feed[tensor.name])
            keep.append(array)
            dims = (ctypes.c_int64 * max(array.ndim, 1))(*array.shape)
            keep.append(dims)
            inputs[slot] = _capi.Tensor(tensor.code, array.ndim, dims, array.ctypes.data, array.nbytes)
        results: list[np.ndarray] = []
        outputs = (_capi.Tensor * max(len(self._outputs), 1))()
        output_dims = []
        for slot, tensor in enumerate(self._outputs):
            if tensor.numpy_dtype is None:
                raise InvalidArgument(f"output {tensor.name!r}: Kiln's Python package has no numpy type for {tensor.dtype_name}")
            array = np.empty(tensor.max_shape, dtype=tensor.numpy_dtype)
            dims = (ctypes.c_int64 * max(tensor.rank, 1))()
            output_dims.append(dims)
            results.append(array)
            outputs[slot] = _capi.Tensor(tensor.code, tensor.rank, dims, array.ctypes.data, max(array.nbytes, tensor.max_bytes))
        check(_capi.lib.kiln_session_run(self._handle, inputs, len(self._inputs), outputs, len(self._outputs)))
        for slot, tensor in enumerate(self._outputs):
            shape = tuple(output_dims[slot][axis] for axis in range(tensor.rank))
            if list(shape) != tensor.max_shape:
                count = int(np.prod(shape, dtype=np.int64))
                results[slot] = results[slot].reshape(-1)[:count].reshape(shape).copy()
        return [results[self._output_index[name]] for name in wanted]

    @staticmethod
    def _as_input(tensor: _Tensor, value: Any) -> np.ndarray:
        array = np.asarray(value)
        if tensor.numpy_dtype is None:
            raise InvalidArgument(f"input {tensor.name!r}: Kiln's Python package has no numpy type for {tensor.dtype_name}")
        if array.dtype != tensor.numpy_dtype:
            got = _ORT_NAMES.get(array.dtype, f"numpy {array.dtype}")
            raise InvalidArgument(f"input {tensor.name!r}: expected {tensor.type}, got {got}")
        if list(array.shape) != tensor.shape:
            raise InvalidArgument(f"input {tensor.name!r}: expected shape {tensor.shape}, got {list(array.shape)}")
        # Kiln reads row-major, densely packed memory: copy only when the array is not.
        return np.ascontiguousarray(array)


class _ModelMeta:
    def __init__(self, graph_name: str) -> None:
        self.graph_name = graph_name
        self.producer_name = "kiln"
        self.custom_metadata_map: dict[str, str] = {}
