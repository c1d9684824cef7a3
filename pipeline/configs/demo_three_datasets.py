# Three datasets, three teachers, one student: the demo (demo_synthetic.py) with a third synthetic twin in
# AI Challenger's style (its 14 joints, in COCO's file format) and a teacher for it. Copy this file to add
# a dataset of your own: a `datasets` entry with its `type` (coco, mpii or aic: data/datasets.py), a
# teacher whose model config names that type's skeleton, and the teacher's loss weight.
#
# The student's joints are the union of the datasets' joints by name, in config order (data/skeletons.py):
# COCO's 17, then MPII's pelvis, thorax, upper_neck, head_top; AIC adds none, as its `neck` is MPII's
# upper_neck (data.skeletons.ALIASES) and its head_top MPII's. So the student config is the demo's 21-joint
# one; with COCO + AIC only it would be 19 joints (head.out_channels = 19).
#
# Only the COCO and MPII teachers are shipped (teachers/demo/). The AIC teacher is trained here, on ground
# truth of its own twin, from the COCO teacher's backbone (as the MPII demo teacher was), then the usual
# two stages run:
#   python cli.py make-synthetic --out data/synthetic-3 --images 600 --styles coco,mpii,aic
#   python cli.py train-student --config pipeline/configs/demo_three_datasets.py --mode supervised --as-teacher aic
#   python cli.py dump-teachers --config pipeline/configs/demo_three_datasets.py --split train
#   python cli.py dump-teachers --config pipeline/configs/demo_three_datasets.py --split val
#   python cli.py train-student --config pipeline/configs/demo_three_datasets.py --mode offline
#   python cli.py train-student --config pipeline/configs/demo_three_datasets.py --mode supervised
#   python cli.py export-report --run outputs/demo-3/offline
_base_ = ['./demo_synthetic.py']
name = 'demo_three_datasets'
work_dir = 'outputs/demo-3'
_data = 'data/synthetic-3'

synthetic = dict(out=_data, images=600, seed=0)

# The dataset paths are spelt out again: a base config's f-strings are evaluated once, with its own _data.
datasets = dict(
    coco=dict(
        type='coco',
        train=dict(ann_file=f'{_data}/coco/annotations/person_keypoints_train.json',
                   image_root=f'{_data}/coco/images/train'),
        val=dict(ann_file=f'{_data}/coco/annotations/person_keypoints_val.json',
                 image_root=f'{_data}/coco/images/val', det_file=None),
        truth=dict(train=f'{_data}/coco/annotations/truth_train.npz', val=f'{_data}/coco/annotations/truth_val.npz'),
    ),
    mpii=dict(
        type='mpii',
        train=dict(ann_file=f'{_data}/mpii/annotations/mpii_train.json', image_root=f'{_data}/mpii/images'),
        val=dict(ann_file=f'{_data}/mpii/annotations/mpii_val.json', image_root=f'{_data}/mpii/images',
                 head_boxes_file=f'{_data}/mpii/annotations/mpii_gt_val.mat'),
        truth=dict(train=f'{_data}/mpii/annotations/truth_train.npz', val=f'{_data}/mpii/annotations/truth_val.npz'),
    ),
    # AI Challenger ships COCO-format keypoints (mmpose's aic_{train,val}.json): the COCO loader reads
    # them with AIC's skeleton; its val metric is OKS AP with AIC's own sigmas.
    aic=dict(
        type='aic',
        train=dict(ann_file=f'{_data}/aic/annotations/person_keypoints_train.json',
                   image_root=f'{_data}/aic/images/train'),
        val=dict(ann_file=f'{_data}/aic/annotations/person_keypoints_val.json',
                 image_root=f'{_data}/aic/images/val', det_file=None),
        truth=dict(train=f'{_data}/aic/annotations/truth_train.npz', val=f'{_data}/aic/annotations/truth_val.npz'),
    ),
)

teachers = dict(
    aic=dict(config='pipeline/configs/models/rtmpose-demo_aic14_128x96.py',
             checkpoint='outputs/demo-3/teachers/aic/last.pth', dataset='aic',
             init_backbone='teachers/demo/coco.pth', train=dict(epochs=16)),
)

cache = dict(root='outputs/demo-3/cache')

# GT and each teacher: the demo's weights, the MPII teacher's shared with the AIC one (both teach the
# joints COCO lacks: upper_neck and head_top).
train = dict(loss_weights=dict(gt=0.3, coco=0.25, mpii=0.25, aic=0.2))

# How the AIC teacher trains (--as-teacher aic): the shipped demo teachers' recipe (demo_teachers.py).
teacher_train = dict(epochs=16, batch_size=32, base_lr=1e-3, weight_decay=0.05,
                     warmup_steps=500, grad_clip=1.0, ema_momentum=0.0002, photometric='final',
                     gt_reduction='batch_mean', val_interval=2, checkpoint_interval=4, num_workers=0,
                     flip_views=False)
