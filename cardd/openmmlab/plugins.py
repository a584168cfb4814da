"""What cardd adds to MMDetection's registries, for `custom_imports` in the configs.

Importing this module registers `CarddCocoMetric` (COCO AP in COCO's and the CarDD
paper's size bins, `cardd.openmmlab.metrics`) and cardd's hooks (`cardd.openmmlab.hooks`),
so a cardd config also runs under MMDetection's own `tools/train.py` and `test.py`.
"""

from cardd.openmmlab import hooks  # noqa: F401 (registers the hooks)
from cardd.openmmlab.metrics import register

register()
