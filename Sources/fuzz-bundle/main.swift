// `fuzz-bundle`: .kiln bytes -> BundleReader, describe, slicing (see FuzzTargets.bundle).

import KilnFuzzTargets

fuzzMain(FuzzTargets.bundle)
