# RTMPose-m, MPII-16 teacher, 256x256: the RTMPose family's base config (rtmpose-m_coco17_256x192.py)
# with the input size, codec sigma and joints of mmpose's
# configs/body_2d_keypoint/rtmpose/mpii/rtmpose-m_8xb64-210e_mpii-256x256.py. mmpose 1.x format;
# builds with mmpose and with teachers.rtmpose.build_model.
_base_ = ['./rtmpose-m_coco17_256x192.py']
skeleton = 'mpii16'
input_size = (256, 256)  # (w, h) pixels

codec = dict(input_size=input_size, sigma=(5.66, 5.66))

model = dict(
    head=dict(out_channels=16, input_size=input_size, in_featuremap_size=(8, 8),  # input / 32
              decoder=codec))
