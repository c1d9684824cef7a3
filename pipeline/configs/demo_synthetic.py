# The embedded default: synthetic twin datasets and the shipped demo teachers (teachers/demo/).
# Same structure as the full-scale config (coco_mpii_rtmpose-s.py); only sizes and paths differ.
# Every path is relative to the repository root.
name = 'demo_synthetic'
seed = 0
work_dir = 'outputs/demo'
_data = 'data/synthetic'

# make-synthetic settings (used by `make demo`; `cli.py make-synthetic` takes the same as options).
synthetic = dict(out=_data, images=600, seed=0)

datasets = dict(
    coco=dict(
        type='coco',
        train=dict(ann_file=f'{_data}/coco/annotations/person_keypoints_train.json',
                   image_root=f'{_data}/coco/images/train'),
        val=dict(ann_file=f'{_data}/coco/annotations/person_keypoints_val.json',
                 image_root=f'{_data}/coco/images/val', det_file=None),
        # Full union-21 truth (synthetic only): lets evaluation score the joints COCO lacks.
        truth=dict(train=f'{_data}/coco/annotations/truth_train.npz',
                   val=f'{_data}/coco/annotations/truth_val.npz'),
    ),
    mpii=dict(
        type='mpii',
        train=dict(ann_file=f'{_data}/mpii/annotations/mpii_train.json', image_root=f'{_data}/mpii/images'),
        val=dict(ann_file=f'{_data}/mpii/annotations/mpii_val.json', image_root=f'{_data}/mpii/images',
                 head_boxes_file=f'{_data}/mpii/annotations/mpii_gt_val.mat'),
        truth=dict(train=f'{_data}/mpii/annotations/truth_train.npz',
                   val=f'{_data}/mpii/annotations/truth_val.npz'),
    ),
)

# Each teacher: an mmpose-style model config + checkpoint. Its skeleton (in the model config) says
# which union joints it covers. `dataset` is the dataset it was trained on. The demo's teachers are
# shipped, as released RTMPose checkpoints are (teachers/demo/manifest.json: sha256, how they were
# made, their scores); `make demo` checks them and never trains them (`make demo-teachers` does).
teachers = dict(
    coco=dict(config='pipeline/configs/models/rtmpose-demo_coco17_128x96.py',
              checkpoint='teachers/demo/coco.pth', dataset='coco'),
    mpii=dict(config='pipeline/configs/models/rtmpose-demo_mpii16_128x128.py',
              checkpoint='teachers/demo/mpii.pth', dataset='mpii'),
)
# As RTMPose-s starts from a CSPNeXt-s trained on COCO + AIC, the demo student (and its baseline)
# start from a backbone trained on the COCO-style twin of the teachers' data, shipped with them
# (teachers/demo/student_init.pth). From scratch, both stay at the mean pose for the demo's ~1000 steps.
student = dict(config='pipeline/configs/models/rtmpose-demo_union21_128x96.py',
               init_backbone='teachers/demo/student_init.pth')

# Every view follows an RTMPose augmentation policy (none is the un-augmented crop). The demo's
# schedules are minutes long, so it uses RTMPose's milder stage-2 policy ('final') throughout and has
# no stage 2 (stage2 = None); the full-scale config uses the main-phase one, then 'final' from epoch 390.
# 4 views over 20 epochs, each mirrored in half of its epochs (train.flip_views): each (view, mirror)
# pair is used 2.5 times. benchmarks/views_trade.py measures the trade (docs/results.md).
views = dict(num_views=4, policy='final')
stage2 = None

# As mmpose's RTMPose: flip test; best.pth kept by COCO AP beside last.pth (the report scores best.pth).
evaluation = dict(flip_test=True, save_best='coco/AP')

# Coded rows, L = 32, each bin rounded to its nearest code (rd_lambda=0), the whole row (a window wider
# than the bins) with one tail number: within KL 1e-3 of the full rows at the distribution the student
# learns from, ~1.6 / 1.4 kB per row (docs/results.md, 'Cache rows'). The rate-distortion codes
# (rd_lambda=1.2e5, levels=36: 1.34 / 1.24 kB at the same KL) trained a worse student on 4 of 4 seeds.
cache = dict(root='outputs/demo/cache', window=512, tail_blocks=1, levels=32, rd_lambda=0.0, lossless=False,
             chunk_size=256)
dump_stage = dict(batch_size=64, num_workers=0, device=None, writers=1)

# Where the demo's recipe differs from the full-scale one (mmpose's RTMPose-s, coco_mpii_rtmpose-s.py):
# 20 epochs of ~50 steps (minutes on 2 CPU cores, not 420 epochs of a GPU day), 'final' views without a
# stage 2, the larger lr below, and weight decay 0.05 (RTMPose-m's), gradient clipping at 1.0 and a
# 50-step warm-up: the demo's settings since its first version, under which its numbers were measured
# (clipping guards the large lr), not re-tuned.
train = dict(
    epochs=20,
    batch_size=32,
    # RTMPose-s: AdamW lr 4e-3 at batch 8 x 256. The demo's ~1000 steps at batch 32 take 2e-3 (with
    # linear scaling from 1024 it would be 1.25e-4: still at the mean pose after the demo's steps).
    base_lr=2e-3,
    auto_scale_lr=None,
    weight_decay=0.05,
    warmup_steps=50,
    grad_clip=1.0,
    ema_momentum=0.0002,
    temperature=1.0,
    # GT, COCO teacher, MPII teacher: the seed project's weights.
    loss_weights=dict(gt=0.3, coco=0.25, mpii=0.45),
    # Joints both teachers cover: one target, the two teachers mixed in proportion to their loss
    # weight x peak probability. Measured on the twins (benchmarks/overlap_modes.py, README 'Losses'):
    # PCK on those joints +7.4 / +3.0 points over 'separate' (COCO- / MPII-style val), noise floor 1.4.
    overlap='confidence',
    kd_decay=False,
    photometric='final',  # HSV, blur, coarse dropout (p .5): data.photometric policies
    gt_reduction='batch_mean',  # see README, 'Losses'
    val_interval=4,
    checkpoint_interval=4,
    num_workers=0,
    amp=True,
    channels_last=True,
    flip_views=True,
    sync_bn=False,
)
