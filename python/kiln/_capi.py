"""ctypes bindings of libkiln.so (include/kiln.h, C API version 1).

ctypes rather than a CPython extension: one wheel serves every CPython 3.9+ (no per-version
build to wait for), and ctypes releases the GIL for the length of every foreign call, so a
`run` waiting on the device lets other Python threads go on.
"""

from __future__ import annotations

import ctypes
import os
import pathlib

API_VERSION = (1 << 16) | 0

STATUS_CODES = {
    1: "InvalidArgument",
    2: "NotFound",
    3: "InvalidModel",
    4: "DeviceError",
    5: "VersionError",
    6: "IOError",
    7: "InternalError",
}

INPUT, OUTPUT = 0, 1


class Tensor(ctypes.Structure):
    """`kiln_tensor`."""

    _fields_ = [
        ("dtype", ctypes.c_int),
        ("rank", ctypes.c_size_t),
        ("dims", ctypes.POINTER(ctypes.c_int64)),
        ("data", ctypes.c_void_p),
        ("capacity", ctypes.c_size_t),
    ]


def _candidates() -> list[pathlib.Path]:
    found = []
    override = os.environ.get("KILN_LIBRARY")
    if override:
        found.append(pathlib.Path(override))
    here = pathlib.Path(__file__).resolve().parent
    found.append(here / "_lib" / "libkiln.so")
    # A source checkout: python/kiln next to .build/release.
    root = here.parent.parent
    for config in ("release", "debug"):
        found.append(root / ".build" / config / "libKilnC.so")
    return found


def _load() -> ctypes.CDLL:
    tried = []
    for path in _candidates():
        if path.is_file():
            return ctypes.CDLL(str(path))
        tried.append(str(path))
    raise ImportError(
        "kiln: libkiln.so not found (tried " + ", ".join(tried) + "); set KILN_LIBRARY or reinstall the package"
    )


lib = _load()

_p = ctypes.c_void_p
_pp = ctypes.POINTER(ctypes.c_void_p)
_s = ctypes.c_char_p
_z = ctypes.c_size_t

_SIGNATURES = {
    "kiln_status_get_code": (ctypes.c_int, [_p]),
    "kiln_status_get_message": (_s, [_p]),
    "kiln_status_release": (None, [_p]),
    "kiln_get_api_version": (ctypes.c_uint32, []),
    "kiln_get_version": (_s, []),
    "kiln_check_version": (_p, [ctypes.c_uint32]),
    "kiln_device_list_create": (_p, [_pp]),
    "kiln_device_list_get_count": (_z, [_p]),
    "kiln_device_list_get_uri": (_s, [_p, _z]),
    "kiln_device_list_get_name": (_s, [_p, _z]),
    "kiln_device_list_get_driver": (_s, [_p, _z]),
    "kiln_device_list_release": (None, [_p]),
    "kiln_device_open": (_p, [_s, _pp]),
    "kiln_device_get_uri": (_s, [_p]),
    "kiln_device_get_name": (_s, [_p]),
    "kiln_device_get_driver": (_s, [_p]),
    "kiln_device_release": (None, [_p]),
    "kiln_compile_options_create": (_p, [_pp]),
    "kiln_compile_options_set": (_p, [_p, _s, _s]),
    "kiln_compile_options_release": (None, [_p]),
    "kiln_compile_file": (_p, [_s, _p, _s]),
    "kiln_compile_bytes": (_p, [ctypes.c_char_p, _z, _p, _pp]),
    "kiln_blob_get_data": (_p, [_p]),
    "kiln_blob_get_size": (_z, [_p]),
    "kiln_blob_release": (None, [_p]),
    "kiln_session_create_from_file": (_p, [_p, _s, _pp]),
    "kiln_session_create_from_bytes": (_p, [_p, ctypes.c_char_p, _z, _pp]),
    "kiln_session_release": (None, [_p]),
    "kiln_session_get_model_name": (_s, [_p]),
    "kiln_session_get_program": (_s, [_p]),
    "kiln_session_get_count": (_z, [_p, ctypes.c_int]),
    "kiln_session_get_name": (_s, [_p, ctypes.c_int, _z]),
    "kiln_session_get_dtype": (ctypes.c_int, [_p, ctypes.c_int, _z]),
    "kiln_session_get_dtype_name": (_s, [_p, ctypes.c_int, _z]),
    "kiln_session_get_rank": (_z, [_p, ctypes.c_int, _z]),
    "kiln_session_get_dim": (ctypes.c_int64, [_p, ctypes.c_int, _z, _z]),
    "kiln_session_get_dim_name": (_s, [_p, ctypes.c_int, _z, _z]),
    "kiln_session_get_max_bytes": (_z, [_p, ctypes.c_int, _z]),
    "kiln_session_run": (_p, [_p, ctypes.POINTER(Tensor), _z, ctypes.POINTER(Tensor), _z]),
}

for _name, (_restype, _argtypes) in _SIGNATURES.items():
    _function = getattr(lib, _name)
    _function.restype = _restype
    _function.argtypes = _argtypes


def text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", errors="replace")
