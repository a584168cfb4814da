# DCN+ on the 1-in-10 subset written by `cardd reduce-data` (small_data/):
# the same recipe, validated and checkpointed every epoch.
_base_ = './DCN_plus.py'

data_root = 'small_data/CarDD_COCO/'

train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = dict(dataset=dict(data_root=data_root))
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = dict(ann_file=data_root + 'annotations/instances_test2017.json')

train_cfg = dict(val_interval=1)
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=1))
