"""Shared fixtures: the models, the devices (lavapipe must be there with CI=true), a kernel cache."""

from __future__ import annotations

import os
import pathlib

import pytest

import kiln

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "Tests" / "Fixtures"


def light_model(name: str) -> pathlib.Path:
    folder = os.environ.get("KILN_ONNX_DATA")
    if not folder:
        pytest.fail("KILN_ONNX_DATA is not set (tools/test sets it with tools/locate-light-models)")
    return pathlib.Path(folder) / f"light_{name}.onnx"


def devices() -> list[str]:
    uris = [device["uri"] for device in kiln.devices()]
    vulkan = [uri for uri in uris if uri.startswith("vulkan")]
    if not vulkan and os.environ.get("CI") == "true":
        raise RuntimeError("CI=true but Kiln sees no Vulkan device (lavapipe is expected)")
    return vulkan[:1] + ["cpu"]


DEVICES = devices()


@pytest.fixture(scope="session", autouse=True)
def kernel_cache(tmp_path_factory):
    if "KILN_CACHE_DIR" not in os.environ:
        os.environ["KILN_CACHE_DIR"] = str(tmp_path_factory.mktemp("kernel-cache"))
