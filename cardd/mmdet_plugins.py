"""What cardd adds to MMDetection's registries, for `custom_imports` in the configs.

Importing this module registers `CarddCocoMetric` (see `cardd.metrics`), so a
cardd config also runs under MMDetection's own `tools/train.py` and `test.py`.
"""

from cardd.metrics import register

register()
