"""Dataset tools: download, extract, check, reduce and synthesize CarDD data.

Every command that writes a dataset writes `<dest>/CarDD_COCO/`; every command
that reads one takes that `CarDD_COCO` folder itself.
"""
