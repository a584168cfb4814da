"""The inference front and its engines (PyTorch, onnxruntime)."""
