"""cardd eval: mmengine's test loop, results files, ONNX models, the paper's size bins."""
