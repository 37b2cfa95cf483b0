// `fuzz-npy`: .npy bytes -> NPY.decode and a round trip (see FuzzTargets.npy).

import KilnFuzzTargets

fuzzMain(FuzzTargets.npy)
