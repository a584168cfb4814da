# RTMDet-Ins-tiny on CarDD: RTMDet_ins_s's recipe with mmdet's tiny sizes
# (`rtmdet/rtmdet-ins_tiny_8xb32-300e_coco.py`; COCO mask AP 35.4 at 11.8 GFLOPs):
# the smallest of the family, for the slowest machines.
_base_ = './RTMDet_ins_s.py'

model = dict(
    backbone=dict(deepen_factor=0.167, widen_factor=0.375),
    neck=dict(in_channels=[96, 192, 384], out_channels=96, num_csp_blocks=1),
    bbox_head=dict(in_channels=96, feat_channels=96))

# fetched by `cardd download-weights --model rtmdet-ins-t`
load_from = 'checkpoints/rtmdet-ins_tiny_8xb32-300e_coco_20221130_151727-ec670f7e.pth'
