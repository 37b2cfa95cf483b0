"""Kiln's errors as Python exceptions: every failed C call raises one, with Kiln's message."""

from __future__ import annotations

from . import _capi


class KilnError(Exception):
    """Base of every error Kiln raises. `code` is the C API's kiln_status_code."""

    code = 0


class InvalidArgument(KilnError, ValueError):
    """A wrong input name, dtype or shape, an unknown option or provider."""

    code = 1


class NotFound(KilnError, LookupError):
    """No such file, device or tensor."""

    code = 2


class InvalidModel(KilnError):
    """A malformed model or bundle, or one using what Kiln lacks."""

    code = 3


class DeviceError(KilnError, RuntimeError):
    """The device failed, was lost, timed out or ran out of memory."""

    code = 4


class VersionError(KilnError):
    """A bundle or C API version this library does not serve."""

    code = 5


class KilnIOError(KilnError, OSError):
    """A file could not be read or written."""

    code = 6


class InternalError(KilnError, RuntimeError):
    """A bug in Kiln: please report it with the message."""

    code = 7


_BY_CODE = {cls.code: cls for cls in (InvalidArgument, NotFound, InvalidModel, DeviceError, VersionError, KilnIOError, InternalError)}


def check(status: int | None) -> None:
    """Raises the exception for a non-NULL `kiln_status *` (and releases it)."""
    if not status:
        return
    try:
        code = _capi.lib.kiln_status_get_code(status)
        message = _capi.text(_capi.lib.kiln_status_get_message(status)) or "unknown error"
    finally:
        _capi.lib.kiln_status_release(status)
    raise _BY_CODE.get(code, KilnError)(message)

