#!/usr/bin/env python3
"""Exports real PyTorch models to ONNX, for measuring Kiln's compile time on graphs as exporters write them.

    tools/make-real-exports.py [OUT_DIR] [NAME]...     (default OUT_DIR .build/real-exports; default: every model)

Each model goes to OUT_DIR/<name>/ as model.onnx plus input_N.npy (seeded random inputs, one file per
graph input, in input order), inputs.txt (the input names, one a line, in the same order) and
output_N.npy (ONNX Runtime's CPU outputs for those inputs: the reference). Every model is built from its
constructor with seeded random weights (no downloads), exported by the TorchScript exporter
(torch.onnx.export with dynamo=False), opset 17, batch 1, static shapes (no dynamic axes):

    googlenet                   torchvision GoogLeNet (no aux heads), image [1, 3, 224, 224]
    densenet121                 torchvision DenseNet-121, image [1, 3, 224, 224]
    deeplabv3_mobilenet_v3_large  torchvision DeepLabV3 on MobileNetV3-Large (no aux head), image
                                [1, 3, 224, 224] -> the "out" map [1, 21, 224, 224]
    efficientnet_b0             torchvision EfficientNet-B0, image [1, 3, 224, 224]
    resnet50                    torchvision ResNet-50, image [1, 3, 224, 224]
    mobilenet_v3_large          torchvision MobileNetV3-Large, image [1, 3, 224, 224]
    regnet_y_400mf              torchvision RegNetY-400MF, image [1, 3, 224, 224]
    shufflenet_v2_x1_0          torchvision ShuffleNetV2 x1.0, image [1, 3, 224, 224]
    vit_b_16                    torchvision ViT-B/16, image [1, 3, 224, 224]
    bert-base                   transformers BertModel, BERT-base sizes (12 layers, hidden 768, 12 heads,
                                vocab 30522), no pooler, [1, 128] -> last_hidden_state [1, 128, 768]
    gpt2-4layer                 transformers GPT2Model, GPT-2 small sizes but 4 layers, no cache,
                                [1, 64] -> last_hidden_state [1, 64, 768]
    t5-small-encoder            transformers T5EncoderModel, t5-small sizes (6 layers, d_model 512),
                                [1, 128] -> last_hidden_state [1, 128, 512]

The transformers models take two int64 inputs, input_ids (seeded random ids) and attention_mask (all
ones), as exporters of these models usually write them.

Parameters that construction fills with one value (zero biases, unit norm scales, ViT's zero head) get
seeded noise, as in a trained checkpoint (see perturb_constant_parameters), and the BatchNormalization
statistics of the image models are measured on seeded random images (see calibrate_batch_norm), so that
their outputs stay near unit scale. Every model is seeded on its own (torch.manual_seed before it is
built), so naming a subset writes the same files as a full run. Attention in the transformers models is
the eager (MatMul + Softmax) form. A model whose export or reference run fails is skipped with its reason
on stderr; the others go on, and the exit status is 1 when any failed. PyTorch and ONNX Runtime run on
one thread; a full run takes about 35 s on a 2-core machine.

Needs (a venv of about 1.4 GB; the outputs take about 1.4 GB more, and .build/ is git-ignored):

    python3 -m venv .venv-export && . .venv-export/bin/activate
    pip install "torch==2.13.0+cpu" torchvision transformers onnx onnxruntime numpy

The CPU torch wheel comes from the machine's PIP_FIND_LINKS folder (/opt/wheels); where it is missing,
plain "torch" from PyPI works too but brings the CUDA libraries (several GB). PyPI's Linux torchvision
wheels are CUDA builds whose C++ ops (nms, roi_align, ...) do not load beside a CPU torch, and
torchvision's import then fails registering a fake for torchvision::nms; so when that extension does not
load, this script first defines the two schemas the import needs (nms, qnms) as stubs, before importing
torchvision or transformers (which imports torchvision). None of the models here calls them.
"""
import argparse
import functools
import glob
import importlib.util
import os
import sys
import time
import warnings

import numpy as np
import torch

IMAGE_MODELS = [
    "googlenet",
    "densenet121",
    "deeplabv3_mobilenet_v3_large",
    "efficientnet_b0",
    "resnet50",
    "mobilenet_v3_large",
    "regnet_y_400mf",
    "shufflenet_v2_x1_0",
    "vit_b_16",
]
TEXT_MODELS = ["bert-base", "gpt2-4layer", "t5-small-encoder"]
MODELS = IMAGE_MODELS + TEXT_MODELS
OPSET = 17
SEED = 0


# ----------------------------------------------------------------------------- torchvision import


@functools.lru_cache(maxsize=None)
def import_torchvision():
    """Imports torchvision, first stubbing the ops its import needs where its C++ extension won't load."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None:
        raise SystemExit("make-real-exports: torchvision is not installed (see the docstring)")
    libraries = glob.glob(os.path.join(spec.submodule_search_locations[0], "_C*.so"))
    try:
        if not libraries:
            raise OSError("no _C library")
        torch.ops.load_library(libraries[0])
    except OSError:
        stubs = torch.library.Library("torchvision", "DEF")
        stubs.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        stubs.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        import_torchvision.stubs = stubs  # keeps the definitions alive
    import torchvision

    return torchvision


# ----------------------------------------------------------------------------- models


class OutEntry(torch.nn.Module):
    """Returns the "out" entry of a segmentation model's dict."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, image):
        return self.model(image)["out"]


class LastHiddenState(torch.nn.Module):
    """Calls a transformers model by keyword and returns its first output, last_hidden_state."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask)[0]


def build_image(name):
    torchvision = import_torchvision()
    models = torchvision.models
    if name == "googlenet":
        model = models.googlenet(weights=None, aux_logits=False, init_weights=True)
    elif name == "deeplabv3_mobilenet_v3_large":
        model = OutEntry(
            models.segmentation.deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, aux_loss=False))
    else:
        model = getattr(models, name)(weights=None)
    perturb_constant_parameters(model)
    calibrate_batch_norm(model)
    rng = np.random.default_rng(SEED)
    image = rng.standard_normal((1, 3, 224, 224), dtype=np.float32)
    return model, [("input", image)]


def calibrate_batch_norm(model):
    """Sets every BatchNorm's running mean and variance to its batch statistics over 4 seeded random images.

    Freshly constructed networks normalize with mean 0 and variance 1, and through deep stacks their
    activations then vanish (EfficientNet-B0's logits come out near 1e-14) or blow up; measured statistics
    keep every layer's output near unit scale, so that the reference outputs are meaningful.
    """
    norms = [module for module in model.modules() if isinstance(module, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average: one pass gives the batch's statistics
    images = np.random.default_rng(SEED + 1).standard_normal((4, 3, 224, 224), dtype=np.float32)
    model.train()
    with torch.no_grad():
        model(torch.from_numpy(images))
    model.eval()


def build_text(name):
    import_torchvision()  # transformers imports torchvision when it is installed
    import transformers

    rng = np.random.default_rng(SEED)
    if name == "bert-base":
        config = transformers.BertConfig(attn_implementation="eager")
        model, length = transformers.BertModel(config, add_pooling_layer=False), 128
    elif name == "gpt2-4layer":
        config = transformers.GPT2Config(n_layer=4, use_cache=False, attn_implementation="eager")
        model, length = transformers.GPT2Model(config), 64
    elif name == "t5-small-encoder":
        config = transformers.T5Config(use_cache=False, attn_implementation="eager")  # t5-small sizes
        model, length = transformers.T5EncoderModel(config), 128
    else:
        raise ValueError(name)
    model.config.return_dict = False
    perturb_constant_parameters(model)
    ids = rng.integers(0, config.vocab_size, size=(1, length), dtype=np.int64)
    mask = np.ones((1, length), dtype=np.int64)
    return LastHiddenState(model), [("input_ids", ids), ("attention_mask", mask)]


def perturb_constant_parameters(model):
    """Adds seeded noise (std 0.02) to every parameter that construction fills with one value.

    Zero biases, unit norm scales and ViT's zero-initialized head are what a fresh model has and a trained
    checkpoint doesn't: the exporter would turn equal initializers into one tensor plus Identity nodes
    (and ViT's logits would all be 0), which no real export shows.
    """
    generator = torch.Generator().manual_seed(SEED + 2)
    with torch.no_grad():
        for parameter in model.parameters():
            flat = parameter.detach().reshape(-1)
            if flat.numel() > 0 and bool(torch.all(flat == flat[0])):
                parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.02)


def build(name):
    torch.manual_seed(SEED)
    if name in IMAGE_MODELS:
        return build_image(name)
    return build_text(name)


# ----------------------------------------------------------------------------- export


def export(name, folder):
    """Writes one model's folder; returns a line saying what it wrote."""
    import onnx
    import onnxruntime

    model, feeds = build(name)
    model.eval()
    tensors = tuple(torch.from_numpy(value) for _, value in feeds)
    path = os.path.join(folder, "model.onnx")
    os.makedirs(folder, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = model(*tensors)
        torch.onnx.export(model, tensors, path, opset_version=OPSET, dynamo=False,
                          input_names=[key for key, _ in feeds], output_names=["output"],
                          do_constant_folding=True)
    onnx.checker.check_model(path)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    graph_inputs = [value.name for value in session.get_inputs()]
    feed_dict = dict(feeds)
    outputs = session.run(None, {key: feed_dict[key] for key in graph_inputs})
    for index, key in enumerate(graph_inputs):
        np.save(os.path.join(folder, f"input_{index}.npy"), feed_dict[key])
    with open(os.path.join(folder, "inputs.txt"), "w") as names:
        names.write("".join(key + "\n" for key in graph_inputs))
    for index, output in enumerate(outputs):
        np.save(os.path.join(folder, f"output_{index}.npy"), output)
    drift = float(np.max(np.abs(outputs[0] - expected.numpy())))
    size = os.path.getsize(path) / 1e6
    nodes = len(onnx.load(path, load_external_data=False).graph.node)
    return (f"{size:.1f} MB, {nodes} nodes, output {list(outputs[0].shape)}, "
            f"max |output| {float(np.max(np.abs(outputs[0]))):.2e}, max |ORT - torch| {drift:.2e}")


def main(argv):
    parser = argparse.ArgumentParser(description="Exports real PyTorch models to ONNX for Kiln's compile-time runs.")
    parser.add_argument("out_dir", nargs="?", default=os.path.join(".build", "real-exports"))
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"models (default: all of {', '.join(MODELS)})")
    args = parser.parse_args(argv)
    if args.out_dir in MODELS:  # a model named with no OUT_DIR before it
        args.names.insert(0, args.out_dir)
        args.out_dir = os.path.join(".build", "real-exports")
    unknown = [name for name in args.names if name not in MODELS]
    if unknown:
        raise SystemExit(f"make-real-exports: unknown model(s) {', '.join(unknown)}; known: {', '.join(MODELS)}")
    torch.set_num_threads(1)
    torch.backends.mha.set_fastpath_enabled(False)  # vit_b_16: the fused MHA kernel has no ONNX export
    failed = []
    for name in args.names or MODELS:
        folder = os.path.join(args.out_dir, name)
        start = time.monotonic()
        try:
            line = export(name, folder)
        except Exception as error:  # noqa: BLE001 - skip the model, report, go on
            reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
            failed.append(name)
            print(f"make-real-exports: FAILED {name}: {type(error).__name__}: {reason}", file=sys.stderr)
            continue
        print(f"make-real-exports: wrote {folder} ({line}; {time.monotonic() - start:.0f} s)", file=sys.stderr)
    if failed:
        print(f"make-real-exports: {len(failed)} failed: {' '.join(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1:])
