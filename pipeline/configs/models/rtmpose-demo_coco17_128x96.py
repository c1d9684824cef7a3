# Demo teacher (COCO-17), 128x96 (h x w): the demo student's network made twice as wide, as RTMPose-m
# is to RTMPose-s. mmpose 1.x format (a `_base_` + deltas; builds with mmpose and with
# teachers.rtmpose.build_model, same state-dict keys). CSPNeXt widen 0.5 (the student: 0.25), head
# input 256 channels, GAU hidden 256 / s 128 (RTMPose's own GAU size): 3.4x the student's FLOPs
# (benchmarks/model_forward.py prints both). Shipped trained in teachers/demo/ (make demo-teachers).
_base_ = ['./rtmpose-demo_union21_128x96.py']
skeleton = 'coco17'

model = dict(
    backbone=dict(widen_factor=0.5),
    head=dict(in_channels=256, out_channels=17, gau_cfg=dict(hidden_dims=256, s=128)))
