"""Benchmarks: tensorrank against onnxruntime on the same models and documents."""
