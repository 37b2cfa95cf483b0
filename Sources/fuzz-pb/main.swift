// `fuzz-pb`: TensorProto bytes -> ONNXTensorFile.decode and a round trip (see FuzzTargets.tensorProto).

import KilnFuzzTargets

fuzzMain(FuzzTargets.tensorProto)
