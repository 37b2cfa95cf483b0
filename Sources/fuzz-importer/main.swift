// `fuzz-importer`: ONNX ModelProto bytes -> import and graph passes (see FuzzTargets.importer).

import KilnFuzzTargets

fuzzMain(FuzzTargets.importer)
