"""Builds libKilnC.so with SwiftPM (release) and ships it in the package as kiln/_lib/libkiln.so.

The package is pure Python over ctypes, so the wheel is tagged py3-none-<platform>: one wheel
for every CPython 3.9+. It needs the Swift toolchain at build time; at run time it needs the
Swift runtime libraries (found through the library's RUNPATH on a machine with the toolchain;
`tools/wheel` copies them into the wheel for machines without) and the Vulkan loader.
"""

import os
import pathlib
import shutil
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

try:
    from wheel.bdist_wheel import bdist_wheel
except ImportError:  # pragma: no cover
    bdist_wheel = None

HERE = pathlib.Path(__file__).resolve().parent


def source_root() -> pathlib.Path:
    root = pathlib.Path(os.environ.get("KILN_SOURCE_DIR", HERE.parent)).resolve()
    if not (root / "Package.swift").is_file():
        raise SystemExit(f"kiln: no Package.swift in {root}; set KILN_SOURCE_DIR to Kiln's source folder")
    return root


def swift() -> str:
    for candidate in (shutil.which("swift"), "/opt/swift/usr/bin/swift", "/usr/share/swift/usr/bin/swift"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise SystemExit("kiln: building the package needs the Swift toolchain (swift on PATH)")


class BuildWithSwift(build_py):
    def run(self):
        super().run()
        library = os.environ.get("KILN_PREBUILT_LIBRARY")
        if not library:
            root = source_root()
            subprocess.check_call([swift(), "build", "-c", "release", "--product", "KilnC"], cwd=root)
            library = str(root / ".build" / "release" / "libKilnC.so")
        target = pathlib.Path(self.build_lib) / "kiln" / "_lib"
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(library, target / "libkiln.so")


commands = {"build_py": BuildWithSwift}

if bdist_wheel is not None:

    class PlatformWheel(bdist_wheel):
        """Not pure (it carries a shared library) but independent of the Python ABI."""

        def get_tag(self):
            _, _, platform = super().get_tag()
            return "py3", "none", platform

    commands["bdist_wheel"] = PlatformWheel

class BinaryDistribution(Distribution):
    """Carries a native library: installed as platform-specific, at the wheel's root."""

    def has_ext_modules(self):
        return True


setup(cmdclass=commands, distclass=BinaryDistribution)
