# Demo teacher (MPII-16), 128x128: the COCO demo teacher's network at MPII's square input (RTMPose-m
# MPII is 256x256), sigma scaled from 256x256 by 0.5. mmpose 1.x format (a `_base_` + deltas).
# Shipped trained in teachers/demo/ (make demo-teachers).
_base_ = ['./rtmpose-demo_coco17_128x96.py']
skeleton = 'mpii16'
input_size = (128, 128)  # (w, h) pixels
codec = dict(input_size=input_size, sigma=(2.83, 2.83))  # (5.66, 5.66) * 128 / 256

model = dict(
    head=dict(out_channels=16, input_size=input_size, in_featuremap_size=(8, 8),
              decoder=dict(input_size=input_size, sigma=(2.83, 2.83))))
