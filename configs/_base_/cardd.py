# What every CarDD config shares: the dataset, its six classes, the splits and
# the COCO metric. This file is the single source of the class names and the
# palette: `cardd.structures.classes` reads `metainfo` from here.
#
# `data_root` is the CarDD_COCO folder (holding annotations/); `cardd train
# --data-root DIR` replaces it everywhere it is used.
dataset_type = 'CocoDataset'

# Registers CarddCocoMetric (COCO AP in COCO's and the CarDD paper's size bins).
custom_imports = dict(imports=['cardd.openmmlab.plugins'],
                      allow_failed_imports=False)
data_root = 'data/CarDD_COCO/'
backend_args = None

# The six classes in label order with their category ids, as in the CarDD JSON
# (`category_ids` is cardd's addition: the ids every output carries).
metainfo = {
    'classes': ('dent', 'scratch', 'crack', 'glass shatter', 'lamp broken',
                'tire flat'),
    'palette': [(230, 25, 75), (255, 225, 25), (0, 130, 200), (60, 180, 75),
                (245, 130, 48), (145, 30, 180)],
    'category_ids': (1, 2, 3, 4, 5, 6),
}

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
