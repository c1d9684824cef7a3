# Demo student (union-21), 128x96 (h x w): a tiny RTMPose that trains on CPU in minutes.
# mmpose 1.x format: `model` builds with mmpose.models.build_pose_estimator and with
# teachers.rtmpose.build_model (same state-dict keys). Not an mmpose release: CSPNeXt
# deepen 0.167 / widen 0.25, three CSPNeXt stages (stride 16: an 8x6-cell map at 128x96, as
# RTMPose has at 256x192; with the stride-32 4x3 map the demo teacher stays at the mean pose:
# benchmarks/teacher_escape.py),
# GAU hidden 128, s 64; sigma scaled from 256x192 by 0.5.
skeleton = 'union'  # the run's union of its datasets' joints (data.skeletons.derive_union)
input_size = (96, 128)  # (w, h) pixels

codec = dict(
    type='SimCCLabel',
    input_size=input_size,
    sigma=(2.45, 2.83),  # (4.9, 5.66) * 128 / 256
    simcc_split_ratio=2.0,
    normalize=False,
    use_dark=False)

model = dict(
    type='TopdownPoseEstimator',
    data_preprocessor=dict(
        type='PoseDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True),
    backbone=dict(
        _scope_='mmdet',
        type='CSPNeXt',
        arch='P5',
        # P5's first three stages, the SPP block moved into the last one.
        arch_ovewrite=[[64, 128, 3, True, False], [128, 256, 6, True, False], [256, 512, 3, False, True]],
        expand_ratio=0.5,
        deepen_factor=0.167,
        widen_factor=0.25,
        out_indices=(3, ),
        channel_attention=True,
        # As in mmpose's RTMPose configs: SyncBN with torch defaults (eps 1e-5, momentum 0.1);
        # mmengine reverts it to BatchNorm when not distributed.
        norm_cfg=dict(type='SyncBN'),
        act_cfg=dict(type='SiLU')),
    head=dict(
        type='RTMCCHead',
        in_channels=128,
        out_channels=21,
        input_size=codec['input_size'],
        in_featuremap_size=tuple([s // 16 for s in codec['input_size']]),
        simcc_split_ratio=codec['simcc_split_ratio'],
        final_layer_kernel_size=7,
        gau_cfg=dict(
            hidden_dims=128,
            s=64,
            expansion_factor=2,
            dropout_rate=0.,
            drop_path=0.,
            act_fn='SiLU',
            use_rel_bias=False,
            pos_enc=False),
        loss=dict(
            type='KLDiscretLoss',
            use_target_weight=True,
            beta=10.,
            label_softmax=True),
        decoder=codec),
    test_cfg=dict(flip_test=True))
