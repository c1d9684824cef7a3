"""Synthetic twin datasets (`make_synthetic`): COCO-style, MPII-style and AI Challenger-style sets of drawn people, in the real file formats.

Every figure is laid out from one articulated model with every joint a dataset type names
(data.skeletons.TWIN_FIGURE), so the full truth is known, while each twin annotates only its own
skeleton: the COCO-style twin writes the 17 COCO joints (person_keypoints_*.json), the MPII-style twin
the 16 MPII joints (mmpose's mpii_*.json + mpii_gt_val.mat), the AIC-style twin AI Challenger's 14
(COCO format, as mmpose reads AIC).
A student can therefore learn the joints a twin lacks only from the other twin's teacher, and
truth_*.npz lets evaluation score exactly those joints.

Layout under out_dir:
    coco/images/{train,val}/{image_id:012d}.jpg
    coco/annotations/person_keypoints_{train,val}.json, truth_{train,val}.npz
    mpii/images/{image_id:09d}.jpg                     (one folder for both splits, as MPII)
    mpii/annotations/mpii_{train,val}.json, mpii_gt_val.mat, truth_{train,val}.npz
    aic/images/{train,val}/{image_id:012d}.jpg, aic/annotations/ as coco/  (only when asked: styles)

Conventions: truth keypoints are 0-based image pixels (pixel centres at integers, as cv2 draws and
warps). COCO json stores them as they are; MPII json stores them 1-based (MATLAB) like the real
annotations, i.e. truth + 1, and center/scale so that mmpose's loader (center[1] += 15 * scale,
center -= 1, square box of side 200 * scale, then bbox padding 1.25) yields a box centred on the body.

The figure model is a small 3-D stick body (unit = one head height) rotated, posed and projected
orthographically; depth orders the painted parts and decides which joints are hidden.

Modules: figure (styles, the 3-D figure model), render (scenes and per-person truth), writers (the
file formats), assemble (the generation loop). The truth is read back by data/truth.py, which does
not import any of these.
"""
from data.twins.assemble import make_synthetic

__all__ = ['make_synthetic']
