# RTMPose-t student on the union-21 skeleton, 256x192 (h x w): the RTMPose family's base config
# (rtmpose-m_coco17_256x192.py) with mmpose's rtmpose-t_8xb256-420e_coco-256x192.py sizes and 21
# output keypoints. mmpose 1.x format; builds with mmpose and with teachers.rtmpose.build_model.
_base_ = ['./rtmpose-m_coco17_256x192.py']
skeleton = 'union'  # the run's union of its datasets' joints (data.skeletons.derive_union)

model = dict(
    backbone=dict(deepen_factor=0.167, widen_factor=0.375),
    head=dict(in_channels=384, out_channels=21))
