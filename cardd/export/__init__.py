"""cardd export: the common part of every format, the .pth export, the ONNX graph."""
