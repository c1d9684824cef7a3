# The demo student's network with a COCO-17 head: trained on ground truth of the COCO-style twin of
# the teachers' synthetic set, its backbone is where the demo student starts from, as mmpose's RTMPose-s
# starts from a CSPNeXt-s trained on COCO + AIC (its backbone init_cfg, prefix 'backbone.').
# Shipped trained in teachers/demo/ (make demo-teachers).
_base_ = ['./rtmpose-demo_union21_128x96.py']
skeleton = 'coco17'

model = dict(head=dict(out_channels=17))
