# RTMDet-Ins scaled down to train on a laptop CPU in seconds per iteration: the
# same model (CSPNeXt, CSPNeXt-PAFPN, RTMDet-Ins head with its dynamic mask
# kernels), the same augmentations, EMA and pipeline switch, at a quarter of the
# tiny model's width and 320x320 input, trained from scratch on `cardd
# synth-data`. It checks the whole pipeline; it is not a damage detector.
_base_ = './RTMDet_ins_s.py'

data_root = 'data/synthetic/CarDD_COCO/'
image_size = (320, 320)

# BN, not SyncBN: one process on a CPU (mmengine reverts SyncBN in training
# anyway; this keeps the built model the same in every command).
norm_cfg = dict(type='BN')
model = dict(
    backbone=dict(deepen_factor=0.167, widen_factor=0.25, norm_cfg=norm_cfg),
    neck=dict(in_channels=[64, 128, 256], out_channels=32, num_csp_blocks=1,
              norm_cfg=norm_cfg),
    bbox_head=dict(in_channels=32, feat_channels=32, norm_cfg=norm_cfg),
    test_cfg=dict(nms_pre=300))

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True,
         poly2mask=False),
    dict(type='CachedMosaic', img_scale=image_size, pad_val=114.0,
         max_cached_images=8, random_pop=False),
    dict(type='RandomResize', scale=(640, 640), ratio_range=(0.5, 2.0),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=image_size, recompute_bbox=True,
         allow_negative_crop=True),
    dict(type='YOLOXHSVRandomAug'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Pad', size=image_size, pad_val=dict(img=(114, 114, 114))),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1, 1)),
    dict(type='PackDetInputs'),
]
train_pipeline_stage2 = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True,
         poly2mask=False),
    dict(type='RandomResize', scale=image_size, ratio_range=(0.5, 2.0),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=image_size, recompute_bbox=True,
         allow_negative_crop=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1, 1)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Pad', size=image_size, pad_val=dict(img=(114, 114, 114))),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='Pad', size=image_size, pad_val=dict(img=(114, 114, 114))),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                    'scale_factor')),
]

# No worker processes: on a 2-core machine they only compete with training.
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False, pin_memory=False,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False, pin_memory=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False, pin_memory=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = dict(ann_file=data_root + 'annotations/instances_test2017.json')

# From scratch at a high rate: 80 iterations (a minute on 2 cores) give scores
# well apart (0.1-0.7 on its photos), which the engines' comparisons need.
max_epochs = 20
plain_epochs = 4
base_lr = 0.02
train_cfg = dict(max_epochs=max_epochs, val_interval=5,
                 dynamic_intervals=[(max_epochs - plain_epochs, 1)])
optim_wrapper = dict(optimizer=dict(lr=base_lr))
auto_scale_lr = dict(base_batch_size=2)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=20),
    dict(type='CosineAnnealingLR', eta_min=base_lr * 0.05,
         begin=max_epochs // 2, end=max_epochs, T_max=max_epochs // 2,
         by_epoch=True, convert_to_iter_based=True),
]
custom_hooks = [
    dict(type='EMAHook', ema_type='ExpMomentumEMA', momentum=0.0002,
         update_buffers=True, priority=49),
    dict(type='PipelineSwitchHook', switch_epoch=max_epochs - plain_epochs,
         switch_pipeline=train_pipeline_stage2),
    dict(type='CarddPlotHook'),
    dict(type='CarddStartupHook'),
]
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(interval=1, save_best='coco/bbox_mAP', max_keep_ckpts=2))

load_from = None
