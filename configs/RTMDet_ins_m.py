# RTMDet-Ins-m on CarDD: RTMDet_ins_s's recipe with mmdet's m sizes
# (`rtmdet/rtmdet-ins_m_8xb32-300e_coco.py`; COCO mask AP 42.1 at 54 GFLOPs).
_base_ = './RTMDet_ins_s.py'

model = dict(
    backbone=dict(deepen_factor=0.67, widen_factor=0.75),
    neck=dict(in_channels=[192, 384, 768], out_channels=192, num_csp_blocks=2),
    bbox_head=dict(in_channels=192, feat_channels=192))

# fetched by `cardd download-weights --model rtmdet-ins-m`
load_from = 'checkpoints/rtmdet-ins_m_8xb32-300e_coco_20221123_001039-6eba602e.pth'
