# RTMDet-Ins-s fine-tuned on CarDD: the fast family beside DCN+ (one stage, no
# deformable convolution; COCO mask AP 38.7 at 21.5 GFLOPs against DCN+'s start
# point's 38.9 at several hundred).
#
# This is mmdet's `rtmdet/rtmdet-ins_s_8xb32-300e_coco.py` (model, strong
# augmentations, EMA, the switch to plain augmentations at the end) with COCO
# swapped for CarDD and a fine-tuning schedule from its COCO weights:
#
# * 36 epochs (CarDD's 2,816 training photos: 6,300 iterations at batch 16);
#   the last 6 without mosaic and mix-up (mmdet's PipelineSwitchHook), as mmdet
#   ends its 300 epochs with 20 plain ones so the model sees undistorted photos.
# * AdamW at lr 2.5e-4 for batch 16: mmdet's 0.004 for batch 256, scaled
#   linearly (as mmdet's own fine-tuning examples do); warm-up 300 iterations,
#   cosine down to 5% over the second half. More GPUs scale it (auto_scale_lr).
# * 640x640 input as in COCO training: the speed the family is for. CarDD's
#   small scratches gain from 800 or more (`--cfg-options` on the pipelines).
_base_ = [
    'mmdet::rtmdet/rtmdet-ins_s_8xb32-300e_coco.py',
    './_base_/classes.py',
]

num_classes = 6

model = dict(
    # load_from below overwrites the whole model: fetch no ImageNet weights first.
    backbone=dict(init_cfg=None),
    bbox_head=dict(num_classes=num_classes))

# CarDD in place of COCO: mmdet's COCO dataset settings already read the same
# layout (annotations/instances_<split>2017.json, <split>2017/); the test split
# is CarDD's own.
data_root = 'data/CarDD_COCO/'
train_dataloader = dict(
    batch_size=16,
    num_workers=8,
    dataset=dict(data_root=data_root, metainfo=_base_.metainfo))
val_dataloader = dict(
    batch_size=8,
    num_workers=4,
    dataset=dict(data_root=data_root, metainfo=_base_.metainfo))
test_dataloader = dict(
    batch_size=8,
    num_workers=4,
    dataset=dict(
        data_root=data_root,
        metainfo=_base_.metainfo,
        ann_file='annotations/instances_test2017.json',
        data_prefix=dict(img='test2017/')))

# mmdet's CocoMetric plus the CarDD paper's size bins, in one COCOeval pass.
val_evaluator = dict(
    _delete_=True,
    type='CarddCocoMetric',
    ann_file=data_root + 'annotations/instances_val2017.json',
    metric=['bbox', 'segm'],
    classwise=True,
    format_only=False,
    backend_args=None)
test_evaluator = dict(
    val_evaluator, ann_file=data_root + 'annotations/instances_test2017.json')

max_epochs = 36
plain_epochs = 6
base_lr = 0.004 * 16 / 256
train_cfg = dict(
    max_epochs=max_epochs,
    val_interval=6,
    dynamic_intervals=[(max_epochs - plain_epochs, 1)])
optim_wrapper = dict(optimizer=dict(lr=base_lr))
auto_scale_lr = dict(enable=True, base_batch_size=16)
param_scheduler = [
    dict(type='LinearLR', start_factor=1.0e-5, by_epoch=False, begin=0,
         end=300),
    dict(type='CosineAnnealingLR', eta_min=base_lr * 0.05,
         begin=max_epochs // 2, end=max_epochs, T_max=max_epochs // 2,
         by_epoch=True, convert_to_iter_based=True),
]

# mmdet's EMA and pipeline switch, plus cardd's training curves and startup line.
custom_hooks = [
    dict(type='EMAHook', ema_type='ExpMomentumEMA', momentum=0.0002,
         update_buffers=True, priority=49),
    dict(type='PipelineSwitchHook', switch_epoch=max_epochs - plain_epochs,
         switch_pipeline=_base_.train_pipeline_stage2),
    dict(type='CarddPlotHook'),
    dict(type='CarddStartupHook'),
]

default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(interval=6, save_best='coco/bbox_mAP', rule='greater',
                    max_keep_ckpts=3))

# MMDetection's COCO RTMDet-Ins-s, fetched by `cardd download-weights --model
# rtmdet-ins-s` (its 80-class head is replaced by CarDD's six).
load_from = 'checkpoints/rtmdet-ins_s_8xb32-300e_coco_20221121_212604-fdc5d7ec.pth'
