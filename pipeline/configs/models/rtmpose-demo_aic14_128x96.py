# Demo teacher (AI Challenger-14), 128x96 (h x w): the COCO demo teacher's network (rtmpose-demo_coco17_128x96.py)
# with AIC's 14 joints in its head. Not shipped: pipeline/configs/demo_three_datasets.py says how to train it.
_base_ = ['./rtmpose-demo_union21_128x96.py']
skeleton = 'aic14'

model = dict(
    backbone=dict(widen_factor=0.5),
    head=dict(in_channels=256, out_channels=14, gau_cfg=dict(hidden_dims=256, s=128)))
