"""Put on PYTHONPATH by the ONNX tests: importing PyTorch or OpenMMLab fails in this
process, as it would in an install without them (`make onnx-env`)."""

import importlib.abc
import sys

BLOCKED = ("torch", "torchvision", "mmcv", "mmdet", "mmengine")


class _Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named '{name}' (blocked by the test)", name=name)
        return None


sys.meta_path.insert(0, _Refuse())
