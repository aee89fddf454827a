"""mars_cloudmask.benchmarks: ``cm-bench``, the Keras baseline against onnxruntime, stage by stage.

Each variant runs in its own process (:mod:`.worker`), measured by :mod:`.measure`; suites are
assembled by :mod:`.runner` and written out by :mod:`.report`.  TensorFlow is imported only
in the Keras variants' processes.
"""
