# The CarDD dataset for configs whose model base brings none (mmdet's
# `_base_/models/...`): the splits, their pipelines and the COCO metric with the
# paper's size bins. The classes come from `classes.py`.
#
# `data_root` is the CarDD_COCO folder (holding annotations/); `cardd train
# --data-root DIR` replaces it everywhere it is used.
_base_ = ['./classes.py']

dataset_type = 'CocoDataset'

data_root = 'data/CarDD_COCO/'
backend_args = None
metainfo = _base_.metainfo

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                    'scale_factor')),
]

train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_train2017.json',
        data_prefix=dict(img='train2017/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=32),
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_val2017.json',
        data_prefix=dict(img='val2017/'),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_test2017.json',
        data_prefix=dict(img='test2017/'),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))

# mmdet's CocoMetric plus the CarDD paper's size bins, in one COCOeval pass.
# <work_dir>/plots/training_curves.png, redrawn after each validation.
custom_hooks = [dict(type='CarddPlotHook'), dict(type='CarddStartupHook')]

val_evaluator = dict(
    type='CarddCocoMetric',
    ann_file=data_root + 'annotations/instances_val2017.json',
    metric=['bbox', 'segm'],
    classwise=True,
    format_only=False,
    backend_args=backend_args)
test_evaluator = dict(
    type='CarddCocoMetric',
    ann_file=data_root + 'annotations/instances_test2017.json',
    metric=['bbox', 'segm'],
    classwise=True,
    format_only=False,
    backend_args=backend_args)
