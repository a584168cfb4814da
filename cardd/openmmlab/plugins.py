"""What cardd adds to MMDetection's registries, for `custom_imports` in the configs.

Importing this module registers `CarddCocoMetric` (COCO AP in COCO's and the CarDD
paper's size bins, `cardd.openmmlab.coco_metric`) and cardd's hooks
(`cardd.openmmlab.hooks`), so a cardd config also runs under MMDetection's own
`tools/train.py` and `test.py`.
"""

from cardd.openmmlab import coco_metric, hooks  # noqa: F401 (importing them registers them)
