"""kiln.InferenceSession against onnxruntime.InferenceSession on the same inputs."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import threading

import numpy as np
import onnxruntime
import pytest

import kiln
from conftest import DEVICES, FIXTURES, light_model


def random_feed(session, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feed = {}
    for arg in session.get_inputs():
        shape = [d if isinstance(d, int) else 1 for d in arg.shape]
        if arg.type == "tensor(float)":
            feed[arg.name] = rng.standard_normal(shape).astype(np.float32)
        elif arg.type == "tensor(int64)":
            feed[arg.name] = rng.integers(0, 10, shape).astype(np.int64)  # token ids below every vocabulary here
        else:
            raise AssertionError(f"no generator for {arg.type}")
    return feed


def assert_close(actual: np.ndarray, expected: np.ndarray, name: str) -> None:
    assert actual.dtype == expected.dtype, name
    assert actual.shape == expected.shape, name
    if np.issubdtype(expected.dtype, np.floating):
        scale = max(1.0, float(np.max(np.abs(expected))) if expected.size else 1.0)
        np.testing.assert_allclose(actual, expected, rtol=1e-3, atol=1e-4 * scale, err_msg=name)
    else:
        np.testing.assert_array_equal(actual, expected, err_msg=name)


MODELS = {
    "squeezenet": lambda: light_model("squeezenet"),
    "resnet50": lambda: light_model("resnet50"),
    "transformer-encoder": lambda: FIXTURES / "transformer-encoder" / "model.onnx",
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("model", sorted(MODELS))
def test_outputs_match_onnxruntime(model: str, device: str) -> None:
    path = MODELS[model]()
    reference = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    session = kiln.InferenceSession(str(path), device=device)
    assert [a.name for a in session.get_inputs()] == [a.name for a in reference.get_inputs()]
    assert [a.name for a in session.get_outputs()] == [a.name for a in reference.get_outputs()]
    assert [a.type for a in session.get_inputs()] == [a.type for a in reference.get_inputs()]
    feed = random_feed(reference)
    expected = reference.run(None, feed)
    actual = session.run(None, feed)
    assert len(actual) == len(expected)
    for arg, a, e in zip(session.get_outputs(), actual, expected):
        assert isinstance(a, np.ndarray)
        assert_close(a, e, f"{model} {device} {arg.name}")
    # Asking for one output by name returns just that one.
    name = session.get_outputs()[-1].name
    (only,) = session.run([name], feed)
    assert_close(only, expected[-1], f"{model} {device} {name} alone")


def test_bundles_load_from_files_and_bytes(tmp_path: pathlib.Path) -> None:
    model = light_model("squeezenet")
    bundle = kiln.compile(model, tmp_path / "squeezenet.kiln", targets=["cpu"])
    from_file = kiln.InferenceSession(bundle, providers=["CPUExecutionProvider"])
    from_bytes = kiln.InferenceSession(pathlib.Path(bundle).read_bytes(), providers=["CPUExecutionProvider"])
    compiled_bytes = kiln.InferenceSession(model.read_bytes(), providers=["CPUExecutionProvider"])
    feed = random_feed(from_file, seed=3)
    (a,) = from_file.run(None, feed)
    (b,) = from_bytes.run(None, feed)
    (c,) = compiled_bytes.run(None, feed)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    assert from_file.get_providers() == ["CPUExecutionProvider"]


def test_providers_follow_onnxruntime() -> None:
    available = kiln.get_available_providers()
    assert "CPUExecutionProvider" in available
    if any(d.startswith("vulkan") for d in DEVICES):
        assert available[0] == "VulkanExecutionProvider"
    model = FIXTURES / "transformer-encoder" / "model.onnx"
    # Providers Kiln lacks are skipped, as onnxruntime skips those it was built without.
    session = kiln.InferenceSession(model, providers=["CUDAExecutionProvider", ("CPUExecutionProvider", {})])
    assert session.get_providers() == ["CPUExecutionProvider"]
    assert session.device == "cpu"
    assert kiln.get_device() in [d["uri"] for d in kiln.devices()]
    assert isinstance(kiln.__version__, str) and kiln.__version__


def test_bad_input_raises_clear_errors(tmp_path: pathlib.Path) -> None:
    model = FIXTURES / "transformer-encoder" / "model.onnx"
    session = kiln.InferenceSession(model, providers=["CPUExecutionProvider"])
    feed = random_feed(session)
    name = session.get_inputs()[0].name
    with pytest.raises(kiln.InvalidArgument, match="unknown input name 'nope'"):
        session.run(None, {**feed, "nope": feed[name]})
    with pytest.raises(kiln.InvalidArgument, match=r"expected tensor\(int64\), got tensor\(double\)"):
        session.run(None, {name: feed[name].astype(np.float64)})
    with pytest.raises(kiln.InvalidArgument, match="expected shape"):
        session.run(None, {name: feed[name][..., :1]})
    with pytest.raises(kiln.InvalidArgument, match="missing input"):
        session.run(None, {})
    with pytest.raises(kiln.InvalidArgument, match="unknown output name"):
        session.run(["nope"], feed)
    with pytest.raises(kiln.InvalidArgument, match="unknown provider 'TPUExecutionProvider'"):
        kiln.InferenceSession(model, providers=["TPUExecutionProvider"])
    with pytest.raises(kiln.NotFound):
        kiln.InferenceSession(model, device="vulkan:99")
    with pytest.raises(kiln.InvalidArgument, match="device URI"):
        kiln.InferenceSession(model, device=0)
    assert kiln.InferenceSession(model, providers="CPUExecutionProvider").get_providers() == ["CPUExecutionProvider"]
    bundle = pathlib.Path(kiln.compile(model, tmp_path / "encoder.kiln", targets=["cpu"]))
    corrupted = bytearray(bundle.read_bytes())
    corrupted[len(corrupted) // 2] ^= 0xFF
    broken = tmp_path / "broken.kiln"
    broken.write_bytes(bytes(corrupted))
    with pytest.raises(kiln.InvalidModel, match="checksum"):
        kiln.InferenceSession(broken, providers=["CPUExecutionProvider"])
    with pytest.raises(kiln.InvalidModel):
        kiln.InferenceSession(b"not a model at all", providers=["CPUExecutionProvider"])
    with pytest.raises(FileNotFoundError):
        kiln.InferenceSession(tmp_path / "missing.onnx")
    # The session still runs after all of that.
    session.run(None, feed)


@pytest.mark.parametrize("device", DEVICES)
def test_one_session_from_eight_threads(device: str) -> None:
    model = FIXTURES / "transformer-encoder" / "model.onnx"
    session = kiln.InferenceSession(model, device=device)
    reference = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    feeds = [random_feed(session, seed=s) for s in range(8)]
    expected = [reference.run(None, feed) for feed in feeds]
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            for _ in range(50):
                for a, e in zip(session.run(None, feeds[index]), expected[index]):
                    assert_close(a, e, f"thread {index}")
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[0]


DROP_IN = """
import sys
import numpy as np
import {module} as ort

session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
feed = {{}}
for arg in session.get_inputs():
    shape = [d if isinstance(d, int) else 1 for d in arg.shape]
    feed[arg.name] = np.random.default_rng(7).standard_normal(shape).astype(np.float32)
names = [o.name for o in session.get_outputs()]
outputs = session.run(names, feed)
np.savez(sys.argv[2], **dict(zip(names, outputs)))
"""


def test_an_onnxruntime_script_runs_with_only_its_import_changed(tmp_path: pathlib.Path) -> None:
    model = light_model("squeezenet")
    results = {}
    for module in ("onnxruntime", "kiln"):
        script = tmp_path / f"{module}_script.py"
        script.write_text(DROP_IN.format(module=module))
        out = tmp_path / f"{module}.npz"
        # The kiln the tests import, installed or from the checkout.
        env = {**os.environ, "PYTHONPATH": str(pathlib.Path(kiln.__file__).resolve().parents[1])}
        subprocess.run([sys.executable, str(script), str(model), str(out)], check=True, env=env)
        results[module] = np.load(out)
    assert sorted(results["kiln"].files) == sorted(results["onnxruntime"].files)
    for name in results["onnxruntime"].files:
        assert_close(results["kiln"][name], results["onnxruntime"][name], name)


@pytest.mark.parametrize("device", DEVICES)
def test_outputs_whose_size_the_data_decides(device: str, tmp_path: pathlib.Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("NonZero", ["x"], ["indices"]), helper.make_node("Relu", ["x"], ["y"])],
        "nonzero",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 4])],
        [
            helper.make_tensor_value_info("indices", TensorProto.INT64, [2, None]),
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 4]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "nonzero.onnx"
    onnx.save(model, path)
    session = kiln.InferenceSession(path, device=device)
    reference = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert isinstance(session.get_outputs()[0].shape[1], str)
    for seed, density in [(0, 0.5), (1, 0.0), (2, 1.0)]:
        rng = np.random.default_rng(seed)
        x = (rng.standard_normal((3, 4)) * (rng.random((3, 4)) < density)).astype(np.float32)
        for a, e, name in zip(session.run(None, {"x": x}), reference.run(None, {"x": x}), ["indices", "y"]):
            assert_close(a, e, f"{name} density {density}")
