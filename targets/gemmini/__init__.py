"""The Gemmini target: ``arch.yaml``/``ERT.yaml`` (loaded by :func:`targets.load_target`),
its emitter (:mod:`targets.gemmini.emit`, TVM imported lazily) and ``runtime/``, a
functional C model of Gemmini's intrinsics the emitted C runs on."""
