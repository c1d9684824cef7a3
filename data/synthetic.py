"""Synthetic twin datasets: a COCO-style and an MPII-style set of drawn people, in the real file formats.

Every figure is laid out from one articulated model with all 21 union joints, so the full truth is
known, while each twin annotates only its own skeleton: the COCO-style twin writes the 17 COCO joints
(person_keypoints_*.json), the MPII-style twin the 16 MPII joints (mmpose's mpii_*.json + mpii_gt_val.mat).
A student can therefore learn the joints a twin lacks only from the other twin's teacher, and
truth21_*.npz lets evaluation score exactly those joints.

Layout under out_dir:
    coco/images/{train,val}/{image_id:012d}.jpg
    coco/annotations/person_keypoints_{train,val}.json, truth21_{train,val}.npz
    mpii/images/{image_id:09d}.jpg                     (one folder for both splits, as MPII)
    mpii/annotations/mpii_{train,val}.json, mpii_gt_val.mat, truth21_{train,val}.npz

Conventions: truth keypoints are 0-based image pixels (pixel centres at integers, as cv2 draws and
warps). COCO json stores them as they are; MPII json stores them 1-based (MATLAB) like the real
annotations, i.e. truth + 1, and center/scale so that mmpose's loader (center[1] += 15 * scale,
center -= 1, square box of side 200 * scale, then bbox padding 1.25) yields a box centred on the body.

The figure model is a small 3-D stick body (unit = one head height) rotated, posed and projected
orthographically; depth orders the painted parts and decides which joints are hidden.
"""
from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from data.files import atomic_write
from data.instances import InstanceTable
from data.skeletons import COCO17, MPII16, UNION21_NAMES, union_indices

K21 = len(UNION21_NAMES)
J = {name: i for i, name in enumerate(UNION21_NAMES)}
STYLES = ('coco', 'mpii')
SPLITS = ('train', 'val')
JPEG_QUALITY = 90
MPII_PIXEL_STD = 200.0  # MPII scale unit: box side in pixels per unit of scale
MPII_CENTER_SHIFT = 15.0  # mmpose moves the MPII centre down by 15 * scale pixels
# The joint names the real mpii_gt_val.mat lists, in MPII joint order.
MPII_MAT_JOINT_NAMES = ('rank', 'rkne', 'rhip', 'lhip', 'lkne', 'lank', 'pelv', 'thor', 'neck', 'head',
                        'rwri', 'relb', 'rsho', 'lsho', 'lelb', 'lwri')
TRUTH_KEYS = ('instance_key', 'image_id', 'keypoints21', 'visible21', 'in_image21', 'head_size', 'body_box')

# ------------------------------------------------------------------------------------------------
# Body parts: painted as polygons; each joint lies on its own parts, so a joint pixel owned by any
# other part (or another person) is occluded.
TORSO, NECK, HEAD, L_UPPER_ARM, R_UPPER_ARM, L_FOREARM, R_FOREARM, L_HAND, R_HAND, \
    L_THIGH, R_THIGH, L_SHIN, R_SHIN, L_FOOT, R_FOOT = range(1, 16)
JOINT_PARTS = {
    'nose': {HEAD}, 'left_eye': {HEAD}, 'right_eye': {HEAD}, 'left_ear': {HEAD}, 'right_ear': {HEAD},
    'left_shoulder': {TORSO, L_UPPER_ARM}, 'right_shoulder': {TORSO, R_UPPER_ARM},
    'left_elbow': {L_UPPER_ARM, L_FOREARM}, 'right_elbow': {R_UPPER_ARM, R_FOREARM},
    'left_wrist': {L_FOREARM, L_HAND}, 'right_wrist': {R_FOREARM, R_HAND},
    'left_hip': {TORSO, L_THIGH}, 'right_hip': {TORSO, R_THIGH},
    'left_knee': {L_THIGH, L_SHIN}, 'right_knee': {R_THIGH, R_SHIN},
    'left_ankle': {L_SHIN, L_FOOT}, 'right_ankle': {R_SHIN, R_FOOT},
    'pelvis': {TORSO, L_THIGH, R_THIGH}, 'thorax': {TORSO, NECK}, 'upper_neck': {NECK, HEAD},
    'head_top': {HEAD},
}


# ------------------------------------------------------------------------------------------------
# Styles: the two twins share the figure model, the people's looks and the rendering world (scenes,
# lighting, camera), as COCO and MPII are both photographs of people. They differ where the real
# datasets differ: what they annotate, framing and person scale, poses and activities, crowding,
# and which kind of scene is more common (street and room vs sports venue).
@dataclass(frozen=True)
class Style:
    name: str
    people_p: tuple[float, ...]  # probability of 1, 2, 3 people
    height_px: tuple[float, float]  # standing height range of a person (log-uniform)
    truncate_p: float  # chance a person is placed across the image border
    occluder_p: float  # chance of a foreground shape per image
    activities: dict  # pose activity -> probability
    large_roll_p: float  # chance of a lying / upside-down figure
    venue_p: float  # chance the scene is a sports venue (else a street / room / park)


COCO_STYLE = Style('coco', people_p=(0.45, 0.35, 0.20), height_px=(60, 200), truncate_p=0.2, occluder_p=0.35,
                   activities={'stand': 0.3, 'walk': 0.25, 'sit': 0.12, 'gesture': 0.13, 'bend': 0.1,
                               'run': 0.05, 'reach': 0.05},
                   large_roll_p=0.03, venue_p=0.3)
MPII_STYLE = Style('mpii', people_p=(0.6, 0.3, 0.1), height_px=(80, 210), truncate_p=0.08, occluder_p=0.15,
                   activities={'stand': 0.1, 'walk': 0.05, 'run': 0.15, 'star': 0.12, 'squat': 0.15,
                               'lunge': 0.13, 'kick': 0.1, 'reach': 0.1, 'gesture': 0.1},
                   large_roll_p=0.08, venue_p=0.7)
CLOTHES_SATURATION, CLOTHES_VALUE = (0.1, 1.0), (0.25, 1.0)
NOISE_SIGMA = 5.0


# ------------------------------------------------------------------------------------------------
# Rotations (body frame: x = person's left, y = up, z = towards the camera when facing it).
def rot_x(deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rot_y(deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def rot_z(deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(np.linalg.norm(v), 1e-9)


# ------------------------------------------------------------------------------------------------
# Pose sampling: joint angles in degrees; index 0 = left limb, 1 = right limb.
def _pair(rng, lo, hi):
    return rng.uniform(lo, hi, size=2)


def _legs_standing(rng, p):
    p['hip_flex'] = _pair(rng, -5, 12)
    p['hip_abd'] = _pair(rng, 0, 12)
    p['knee'] = _pair(rng, 0, 15)


def _arms_relaxed(rng, p):
    p['arm_abd'] = _pair(rng, 5, 35)
    p['arm_flex'] = _pair(rng, -20, 35)
    p['elbow'] = _pair(rng, 0, 60)


def _activity_angles(rng, activity: str, p: dict) -> None:
    """Fill limb and torso angles for one activity (ranges are rough human ones)."""
    _legs_standing(rng, p)
    _arms_relaxed(rng, p)
    side = rng.integers(2)  # which limb leads
    if activity == 'walk':
        a = rng.uniform(12, 35)
        p['hip_flex'] = np.array([a, -a]) * (1 if side else -1)
        p['knee'] = np.where(p['hip_flex'] < 0, rng.uniform(15, 45), rng.uniform(0, 20))
        p['arm_flex'] = -0.8 * p['hip_flex']
        p['elbow'] = _pair(rng, 10, 50)
    elif activity == 'sit':
        p['hip_flex'] = _pair(rng, 70, 100)
        p['knee'] = _pair(rng, 70, 105)
        p['hip_abd'] = _pair(rng, 3, 25)
        p['arm_flex'] = _pair(rng, 0, 60)
        p['elbow'] = _pair(rng, 30, 100)
    elif activity == 'gesture':
        raised = rng.uniform(size=2) < 0.7
        p['arm_abd'] = np.where(raised, rng.uniform(40, 170, 2), p['arm_abd'])
        p['arm_flex'] = np.where(raised, rng.uniform(-10, 120, 2), p['arm_flex'])
        p['elbow'] = np.where(raised, rng.uniform(0, 130, 2), p['elbow'])
    elif activity == 'bend':
        p['torso_pitch'] = rng.uniform(30, 75)
        p['arm_flex'] = _pair(rng, 30, 100)
        p['knee'] = _pair(rng, 0, 40)
    elif activity == 'run':
        front, back = rng.uniform(40, 80), rng.uniform(-35, -10)
        p['hip_flex'] = np.array([front, back]) if side else np.array([back, front])
        p['knee'] = np.where(p['hip_flex'] > 0, rng.uniform(40, 100), rng.uniform(60, 120))
        p['arm_flex'] = -np.sign(p['hip_flex']) * rng.uniform(30, 70, 2)
        p['elbow'] = _pair(rng, 70, 110)
        p['torso_pitch'] = rng.uniform(5, 25)
    elif activity == 'star':
        p['arm_abd'] = _pair(rng, 80, 170)
        p['arm_flex'] = _pair(rng, -15, 30)
        p['elbow'] = _pair(rng, 0, 30)
        p['hip_abd'] = _pair(rng, 15, 45)
        p['knee'] = _pair(rng, 0, 30)
    elif activity == 'squat':
        p['hip_flex'] = _pair(rng, 70, 120)
        p['knee'] = _pair(rng, 90, 140)
        p['hip_abd'] = _pair(rng, 10, 35)
        p['torso_pitch'] = rng.uniform(15, 50)
        p['arm_flex'] = _pair(rng, 40, 110)
        p['elbow'] = _pair(rng, 0, 40)
    elif activity == 'lunge':
        front, back = rng.uniform(60, 95), rng.uniform(-35, -10)
        p['hip_flex'] = np.array([front, back]) if side else np.array([back, front])
        p['knee'] = np.where(p['hip_flex'] > 0, rng.uniform(70, 100), rng.uniform(0, 35))
        p['arm_abd'] = _pair(rng, 20, 100)
    elif activity == 'kick':
        p['hip_flex'][side] = rng.uniform(60, 120)
        p['knee'][side] = rng.uniform(0, 50)
        p['arm_abd'] = _pair(rng, 30, 110)
        p['torso_pitch'] = rng.uniform(-25, 0)
    elif activity == 'reach':
        p['arm_flex'][side] = rng.uniform(100, 175)
        p['elbow'][side] = rng.uniform(0, 60)
        p['arm_flex'][1 - side] = rng.uniform(-45, 20)
        p['torso_twist'] = rng.uniform(-35, 35)
    elif activity != 'stand':
        raise ValueError(f'unknown activity {activity!r}')


def sample_yaw(rng) -> float:
    """Whole-body facing: mostly frontal, often profile, sometimes from behind (0 = facing the camera)."""
    u = rng.uniform()
    if u < 0.55:
        return rng.uniform(-50, 50)
    if u < 0.8:
        return rng.choice([-1, 1]) * rng.uniform(50, 130)
    return rng.uniform(130, 230)


def sample_pose(rng: np.random.Generator, style: Style) -> dict:
    names = list(style.activities)
    activity = names[rng.choice(len(names), p=np.array(list(style.activities.values())))]
    wide = style.name == 'mpii'
    pose = {
        'activity': activity, 'yaw': sample_yaw(rng), 'roll': rng.normal(0, 8 if wide else 5),
        'torso_pitch': rng.uniform(-10, 20), 'torso_side': rng.uniform(-1, 1) * (18 if wide else 8),
        'torso_twist': rng.uniform(-1, 1) * (30 if wide else 20),
        'head_yaw': rng.uniform(-40, 40), 'head_pitch': rng.uniform(-20, 25), 'head_roll': rng.uniform(-10, 10),
        'arm_twist': _pair(rng, -50, 50),
    }
    _activity_angles(rng, activity, pose)
    for key in ('arm_abd', 'arm_flex', 'elbow', 'hip_flex', 'hip_abd', 'knee'):
        pose[key] = pose[key] + rng.normal(0, 5, size=2)
    pose['elbow'] = np.clip(pose['elbow'], 0, 150)
    pose['knee'] = np.clip(pose['knee'], 0, 150)
    pose['hip_abd'] = np.clip(pose['hip_abd'], -10, 60)
    if rng.uniform() < style.large_roll_p:  # lying, cartwheel, handstand
        pose['roll'] = rng.choice([-1, 1]) * rng.uniform(60, 180)
    return pose


# ------------------------------------------------------------------------------------------------
# Body shape and appearance.
@dataclass
class Body:
    lengths: dict  # segment lengths in head units
    radii: dict  # part half-thickness in head units


def sample_body(rng: np.random.Generator) -> Body:
    j = lambda v: v * rng.uniform(0.92, 1.08)  # noqa: E731  per-segment proportion jitter
    build = rng.uniform(0.8, 1.25)
    lengths = {'neck': j(0.42), 'spine': j(2.55), 'shoulder': j(0.85) * build ** 0.5, 'hip': j(0.45) * build ** 0.5,
               'upper_arm': j(1.4), 'forearm': j(1.2), 'hand': 0.35, 'thigh': j(1.85), 'shin': j(1.8), 'foot': 0.55,
               'torso_top': 1.0 * build ** 0.5, 'torso_bottom': 0.7 * build ** 0.5, 'torso_depth': 0.42 * build}
    radii = {'upper_arm': (0.18 * build, 0.15 * build), 'forearm': (0.14 * build, 0.11 * build), 'hand': 0.14,
             'thigh': (0.28 * build, 0.2 * build), 'shin': (0.19 * build, 0.13 * build), 'foot': 0.12,
             'neck': 0.17 * build}
    return Body(lengths, radii)


def _hsv_colour(rng, sat, val) -> np.ndarray:
    hsv = np.uint8([[[rng.integers(0, 180), rng.uniform(*sat) * 255, rng.uniform(*val) * 255]]])
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float64)


SKIN_TONES = np.array([(185, 205, 240), (150, 180, 225), (120, 160, 210), (95, 135, 190), (75, 105, 160),
                       (55, 80, 125), (45, 60, 95)], dtype=np.float64)  # BGR
HAIR_COLOURS = np.array([(20, 20, 25), (30, 45, 80), (40, 80, 130), (110, 170, 215), (150, 150, 155),
                         (35, 60, 150)], dtype=np.float64)


def sample_appearance(rng: np.random.Generator, style: Style) -> dict:
    skin = SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.92, 1.08)
    shirt = _hsv_colour(rng, CLOTHES_SATURATION, CLOTHES_VALUE)
    pants = _hsv_colour(rng, CLOTHES_SATURATION, (0.15, 0.7))
    return {'skin': skin, 'hair': HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))], 'shirt': shirt, 'pants': pants,
            'shoes': _hsv_colour(rng, (0, 0.5), (0.05, 0.4)),
            'long_sleeves': rng.uniform() < 0.4, 'long_pants': rng.uniform() < 0.55}


def side_shade(colour: np.ndarray, left: bool) -> np.ndarray:
    """Left limbs a little lighter, right limbs a little darker: a consistent cue a small net can use
    for left/right, like the context real images give."""
    return np.clip(colour * 1.18 + 14 if left else colour * 0.8, 0, 255)


# ------------------------------------------------------------------------------------------------
# Figure layout: pose + body -> 3-D joints (body frame, head units).
@dataclass
class Figure:
    joints: np.ndarray  # (21, 3) image frame: x, y pixels (0-based), z pixels towards the camera
    head_center: np.ndarray  # (3,)
    head_axes: np.ndarray  # (3, 3) columns: head left, up, forward (unit, image frame)
    hands: np.ndarray  # (2, 3) hand tips (left, right)
    feet: np.ndarray  # (2, 3) toe tips
    px_per_unit: float  # pixels per head unit


def layout_body(pose: dict, body: Body) -> dict:
    """3-D points in the body frame (pelvis at the origin, y up), head units."""
    L = body.lengths
    down, fwd = np.array([0., -1, 0]), np.array([0., 0, 1])
    upper = rot_z(pose['torso_side']) @ rot_x(pose['torso_pitch']) @ rot_y(pose['torso_twist'])
    pts = {'pelvis': np.zeros(3)}
    pts['thorax'] = upper @ np.array([0, L['spine'], 0])
    head_frame = upper @ rot_y(pose['head_yaw']) @ rot_x(-pose['head_pitch']) @ rot_z(pose['head_roll'])
    pts['upper_neck'] = pts['thorax'] + upper @ rot_x(-0.5 * pose['head_pitch']) @ np.array([0, L['neck'], 0])
    head_center = pts['upper_neck'] + head_frame @ np.array([0, 0.45, 0])
    pts['head_top'] = pts['upper_neck'] + head_frame @ np.array([0, 0.97, 0])  # just inside the hair crown
    face = {'nose': (0, -0.05, 0.5), 'left_eye': (0.17, 0.08, 0.4), 'right_eye': (-0.17, 0.08, 0.4),
            'left_ear': (0.41, 0.0, -0.02), 'right_ear': (-0.41, 0.0, -0.02)}
    for name, offset in face.items():
        pts[name] = head_center + head_frame @ np.array(offset)
    hands, feet = [], []
    for k, (side, sgn) in enumerate((('left', 1), ('right', -1))):
        # Arm: abduct in the frontal plane, flex forward, bend the elbow towards the twisted forearm plane.
        shoulder = pts['thorax'] + upper @ np.array([sgn * L['shoulder'], 0, 0])
        arm_frame = upper @ rot_x(-pose['arm_flex'][k]) @ rot_z(sgn * pose['arm_abd'][k])
        d_upper = arm_frame @ down
        b0, s0 = arm_frame @ fwd, np.cross(arm_frame @ down, arm_frame @ fwd)
        tw = np.radians(sgn * pose['arm_twist'][k])
        bend = np.cos(tw) * b0 + np.sin(tw) * s0
        e = np.radians(pose['elbow'][k])
        d_fore = np.cos(e) * d_upper + np.sin(e) * bend
        pts[f'{side}_shoulder'] = shoulder
        pts[f'{side}_elbow'] = shoulder + L['upper_arm'] * d_upper
        pts[f'{side}_wrist'] = pts[f'{side}_elbow'] + L['forearm'] * d_fore
        hands.append(pts[f'{side}_wrist'] + L['hand'] * d_fore)
        # Leg: flex forward, abduct sideways, knee bends backwards.
        hip = np.array([sgn * L['hip'], 0, 0])
        leg_frame = rot_x(-pose['hip_flex'][k]) @ rot_z(sgn * pose['hip_abd'][k])
        d_thigh = leg_frame @ down
        kk = np.radians(pose['knee'][k])
        d_shin = np.cos(kk) * d_thigh - np.sin(kk) * (leg_frame @ fwd)
        pts[f'{side}_hip'] = hip
        pts[f'{side}_knee'] = hip + L['thigh'] * d_thigh
        pts[f'{side}_ankle'] = pts[f'{side}_knee'] + L['shin'] * d_shin
        foot_dir = _unit(rot_y(sgn * 10) @ fwd - 0.3 * d_shin)
        feet.append(pts[f'{side}_ankle'] + L['foot'] * foot_dir)
    return {'joints': np.stack([pts[n] for n in UNION21_NAMES]), 'head_center': head_center,
            'head_axes': head_frame, 'hands': np.stack(hands), 'feet': np.stack(feet),
            'upper': upper}


def body_to_image(points: np.ndarray, yaw: float, roll: float, px_per_unit: float,
                  offset_xy: np.ndarray) -> np.ndarray:
    """Body frame (y up) -> image frame (x right, y down, z towards camera) in pixels."""
    p = points @ rot_y(yaw).T
    p = p * np.array([1, -1, 1]) * px_per_unit  # y down
    c, s = np.cos(np.radians(roll)), np.sin(np.radians(roll))
    xy = p[..., :2] @ np.array([[c, s], [-s, c]])  # in-plane rotation
    return np.concatenate([xy + offset_xy, p[..., 2:]], axis=-1)


def layout_figure(pose: dict, body: Body, height_px: float, anchor_xy: np.ndarray) -> Figure:
    """Place the posed body so that its 2-D box centre lands on anchor_xy; height_px = standing height.
    Joints are rounded to 0.01 px: the annotations store that precision and the truth equals them."""
    parts = layout_body(pose, body)
    standing = body.lengths['shin'] + body.lengths['thigh'] + body.lengths['spine'] + body.lengths['neck'] + 1.0
    s = height_px / standing
    to_img = lambda p: body_to_image(p, pose['yaw'], pose['roll'], s, np.zeros(2))  # noqa: E731
    joints = to_img(parts['joints'])
    extent = np.concatenate([joints[:, :2], to_img(parts['hands'])[:, :2], to_img(parts['feet'])[:, :2]])
    shift = np.asarray(anchor_xy, float) - 0.5 * (extent.min(0) + extent.max(0))
    shift3 = np.array([shift[0], shift[1], 0.0])
    joints = joints + shift3
    joints[:, :2] = np.round(joints[:, :2], 2)
    axes = (rot_y(pose['yaw']) @ parts['head_axes']) * np.array([[1], [-1], [1]])
    c, s_ = np.cos(np.radians(pose['roll'])), np.sin(np.radians(pose['roll']))
    roll3 = np.array([[c, -s_, 0], [s_, c, 0], [0, 0, 1]])
    return Figure(joints=joints, head_center=to_img(parts['head_center']) + shift3, head_axes=roll3 @ axes,
                  hands=to_img(parts['hands']) + shift3, feet=to_img(parts['feet']) + shift3, px_per_unit=s)


def figure_extent(pose: dict, body: Body, height_px: float) -> np.ndarray:
    """(w, h) of the figure's 2-D box in pixels, before placement."""
    f = layout_figure(pose, body, height_px, np.zeros(2))
    pts = np.concatenate([f.joints[:, :2], f.hands[:, :2], f.feet[:, :2]])
    return pts.max(0) - pts.min(0) + 0.6 * f.px_per_unit


# ------------------------------------------------------------------------------------------------
# Polygons for the painted parts (image pixels).
def capsule(p0: np.ndarray, p1: np.ndarray, r0: float, r1: float, n_cap: int = 6) -> np.ndarray:
    """Tapered rod with round ends from p0 to p1 (2-D), as a polygon."""
    d = p1[:2] - p0[:2]
    ang = np.arctan2(d[1], d[0]) if np.hypot(*d) > 1e-6 else 0.0
    t1 = ang + np.linspace(-np.pi / 2, np.pi / 2, n_cap)
    t0 = ang + np.linspace(np.pi / 2, 3 * np.pi / 2, n_cap)
    return np.concatenate([p1[:2] + r1 * np.stack([np.cos(t1), np.sin(t1)], 1),
                           p0[:2] + r0 * np.stack([np.cos(t0), np.sin(t0)], 1)])


def projected_ellipsoid(center: np.ndarray, axes: np.ndarray, radii, n: int = 28) -> np.ndarray:
    """Outline of the orthographic shadow of an ellipsoid (axes columns, radii in pixels)."""
    m = axes @ np.diag(np.square(radii)) @ axes.T
    w, v = np.linalg.eigh(m[:2, :2])
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    circle = np.stack([np.cos(t), np.sin(t)], 1)
    return center[:2] + (circle * np.sqrt(np.maximum(w, 1e-6))) @ v.T


def torso_polygon(f: Figure, body: Body) -> np.ndarray:
    """Convex hull of a box from shoulder line to hip line with the body's depth."""
    j, s = f.joints, f.px_per_unit
    lateral_top = _unit(j[J['left_shoulder']] - j[J['right_shoulder']])
    lateral_bot = _unit(j[J['left_hip']] - j[J['right_hip']])
    spine = _unit(j[J['thorax']] - j[J['pelvis']])
    depth_top, depth_bot = _unit(np.cross(lateral_top, spine)), _unit(np.cross(lateral_bot, spine))
    top = j[J['thorax']] + 0.12 * s * spine
    bot = j[J['pelvis']] - 0.15 * s * spine
    L, d = body.lengths, body.lengths['torso_depth'] * s
    corners = [c + a * w * s * lat + b * d * dep for c, w, lat, dep in
               ((top, L['torso_top'], lateral_top, depth_top), (bot, L['torso_bottom'], lateral_bot, depth_bot))
               for a in (-1, 1) for b in (-1, 1)]
    hull = cv2.convexHull(np.array(corners)[:, :2].astype(np.float32))
    return hull[:, 0].astype(np.float64)


@dataclass
class Part:
    polygon: np.ndarray  # (M, 2) pixels
    colour: np.ndarray  # BGR float
    part_id: int
    depth: float  # larger = nearer the camera (painted later)


def figure_parts(f: Figure, body: Body, look: dict) -> list[Part]:
    """All painted parts of one figure in painting order (far to near)."""
    j, s, R = f.joints, f.px_per_unit, body.radii
    limbs = []
    for side, left in (('left', True), ('right', False)):
        ids = dict(zip(('upper_arm', 'forearm', 'hand', 'thigh', 'shin', 'foot'),
                       (L_UPPER_ARM, L_FOREARM, L_HAND, L_THIGH, L_SHIN, L_FOOT) if left else
                       (R_UPPER_ARM, R_FOREARM, R_HAND, R_THIGH, R_SHIN, R_FOOT)))
        k = 0 if left else 1
        forearm_c = look['shirt'] if look['long_sleeves'] else look['skin']
        shin_c = look['pants'] if look['long_pants'] else look['skin']
        segs = [('upper_arm', j[J[f'{side}_shoulder']], j[J[f'{side}_elbow']], look['shirt']),
                ('forearm', j[J[f'{side}_elbow']], j[J[f'{side}_wrist']], forearm_c),
                ('thigh', j[J[f'{side}_hip']], j[J[f'{side}_knee']], look['pants']),
                ('shin', j[J[f'{side}_knee']], j[J[f'{side}_ankle']], shin_c),
                ('hand', j[J[f'{side}_wrist']], f.hands[k], look['skin']),
                ('foot', j[J[f'{side}_ankle']], f.feet[k], look['shoes'])]
        for name, a, b, colour in segs:
            r = R[name] if isinstance(R[name], tuple) else (R[name], R[name] * 0.8)
            # limbs are painted over the torso unless clearly behind it
            limbs.append(Part(capsule(a, b, max(r[0] * s, 0.8), max(r[1] * s, 0.7)), side_shade(colour, left),
                              ids[name], 0.5 * (a[2] + b[2]) + 0.25 * s))
    torso = Part(torso_polygon(f, body), look['shirt'], TORSO, (j[J['thorax'], 2] + j[J['pelvis'], 2]) / 2)
    neck = Part(capsule(j[J['thorax']], j[J['upper_neck']], R['neck'] * s, R['neck'] * s * 0.9), look['skin'] * 0.9,
                NECK, torso.depth + 0.01)
    parts = sorted([torso, neck] + limbs, key=lambda p: p.depth)
    head_depth = f.head_center[2] + 0.3 * s
    at = next((i for i, p in enumerate(parts) if p.depth > head_depth), len(parts))
    return parts[:at] + head_parts(f, look) + parts[at:]


def head_parts(f: Figure, look: dict) -> list[Part]:
    """Skin ellipsoid, hair cap (behind the face when it looks at us, over the head otherwise) and the
    face points that face the camera."""
    s, c, A = f.px_per_unit, f.head_center, f.head_axes
    up, fwd = A[:, 1], A[:, 2]
    skin = Part(projected_ellipsoid(c, A, (0.4 * s, 0.52 * s, 0.45 * s)), look['skin'], HEAD, 0)
    hair = Part(projected_ellipsoid(c + (0.1 * up - 0.12 * fwd) * s, A, (0.43 * s, 0.45 * s, 0.40 * s)),
                look['hair'], HEAD, 0)
    parts = [hair, skin] if fwd[2] > 0.3 else [skin, hair]
    vis = face_point_visible(f)
    r = max(0.065 * s, 0.7)
    for name in ('left_ear', 'right_ear'):
        if vis[name]:
            parts.append(Part(projected_ellipsoid(f.joints[J[name]], A, (0.06 * s + 0.5, 0.13 * s + 0.5, 0.08 * s)),
                              side_shade(look['skin'] * 0.8, name.startswith('left')), HEAD, 0))
    for name in ('left_eye', 'right_eye'):
        if vis[name]:
            parts.append(Part(capsule(f.joints[J[name]], f.joints[J[name]], r, r, 8), np.full(3, 25.0), HEAD, 0))
    if vis['nose']:
        parts.append(Part(capsule(f.joints[J['nose']], f.joints[J['nose']], r * 1.2, r * 1.2, 8),
                          look['skin'] * 0.6, HEAD, 0))
    return parts


def face_point_visible(f: Figure) -> dict:
    """Which face points face the camera (z towards the viewer), by the surface normal at the point."""
    left, fwd = f.head_axes[:, 0], f.head_axes[:, 2]
    normals = {'nose': fwd, 'left_eye': _unit(0.8 * fwd + 0.6 * left), 'right_eye': _unit(0.8 * fwd - 0.6 * left),
               'left_ear': left, 'right_ear': -left}
    limits = {'nose': -0.1, 'left_eye': 0.1, 'right_eye': 0.1, 'left_ear': -0.35, 'right_ear': -0.35}
    return {n: normals[n][2] > limits[n] for n in normals}


def fill_polygon(img: np.ndarray, polygon: np.ndarray, colour, antialias: bool) -> None:
    pts = np.round(polygon * 16).astype(np.int32)[None]  # 4 fractional bits: sub-pixel placement
    cv2.fillPoly(img, pts, colour, cv2.LINE_AA if antialias else cv2.LINE_8, shift=4)


# ------------------------------------------------------------------------------------------------
# Backgrounds (two kinds of scene, both twins), occluders and lighting.
def texture(rng, h: int, w: int, coarse: tuple[int, float], fine: tuple[int, float], chroma: float) -> np.ndarray:
    """Smooth blotches (cell size, amplitude) plus finer grain, mostly in brightness: one full-size resize."""
    gh, gw = h // fine[0] + 2, w // fine[0] + 2
    lum = rng.standard_normal((h // coarse[0] + 2, w // coarse[0] + 2, 1)).astype(np.float32)
    col = rng.standard_normal((h // coarse[0] + 2, w // coarse[0] + 2, 3)).astype(np.float32)
    blotch = cv2.resize(lum + chroma * col, (gw, gh), interpolation=cv2.INTER_CUBIC) * coarse[1]
    grain = rng.standard_normal((gh, gw, 1)).astype(np.float32) * fine[1]
    return cv2.resize(blotch + grain, (w, h), interpolation=cv2.INTER_LINEAR)


COCO_BG = np.array([(200, 160, 110), (180, 190, 200), (150, 170, 190), (60, 120, 70), (110, 110, 110),
                    (140, 180, 210), (90, 90, 80), (70, 100, 140), (210, 210, 215)], dtype=np.float32)
MPII_FLOORS = np.array([(60, 140, 60), (160, 110, 60), (70, 130, 190), (60, 70, 170), (150, 150, 140)],
                       dtype=np.float32)
MPII_WALLS = np.array([(70, 70, 75), (200, 200, 205), (120, 100, 90), (40, 50, 60), (150, 170, 180)],
                      dtype=np.float32)


def random_shape(rng, w: int, h: int, size: float) -> np.ndarray:
    """A polygon: box, ellipse, pole or blob, of about `size` pixels, anywhere in the image."""
    c = rng.uniform([0, 0], [w, h])
    kind = rng.integers(4)
    if kind == 0:
        half = rng.uniform(0.3, 1.0, 2) * size / 2
        poly = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * half
    elif kind == 1:
        t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        poly = np.stack([np.cos(t), np.sin(t)], 1) * rng.uniform(0.2, 0.5, 2) * size
    elif kind == 2:
        poly = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * np.array([rng.uniform(0.03, 0.08), 1]) * size
    else:
        pts = rng.uniform(-0.5, 0.5, (7, 2)) * size
        poly = cv2.convexHull(pts.astype(np.float32))[:, 0].astype(np.float64)
    a = np.radians(rng.uniform(0, 180))
    rot = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    return poly @ rot + c


def coco_background(rng, h: int, w: int) -> np.ndarray:
    """Street / room / park look: two-tone horizon, soft texture and clutter."""
    top, bottom = COCO_BG[rng.choice(len(COCO_BG), 2, replace=False)] * rng.uniform(0.8, 1.15, (2, 3))
    horizon = rng.uniform(0.2, 0.8) * h + rng.uniform(-0.2, 0.2) * (np.arange(w) - w / 2)
    rows = np.arange(h)[:, None] < horizon[None, :]
    img = np.where(rows[..., None], top, bottom).astype(np.float32)
    img += texture(rng, h, w, (24, 18), (6, 7), chroma=0.35)
    for _ in range(rng.integers(2, 9)):
        fill_polygon(img, random_shape(rng, w, h, rng.uniform(0.1, 0.6) * h),
                     COCO_BG[rng.integers(len(COCO_BG))] * rng.uniform(0.5, 1.2, 3), True)
    return img


def mpii_background(rng, h: int, w: int) -> np.ndarray:
    """Sports venue look: a coloured floor with court lines below a wall."""
    floor = MPII_FLOORS[rng.integers(len(MPII_FLOORS))] * rng.uniform(0.85, 1.1, 3)
    wall = MPII_WALLS[rng.integers(len(MPII_WALLS))] * rng.uniform(0.85, 1.1, 3)
    horizon = rng.uniform(0.15, 0.55) * h
    img = np.empty((h, w, 3), np.float32)
    img[:] = floor
    img[:int(horizon)] = wall
    img += texture(rng, h, w, (40, 10), (4, 5), chroma=0.5)
    for _ in range(rng.integers(1, 5)):  # court lines on the floor
        y0, y1 = rng.uniform(horizon, h, 2)
        cv2.line(img, (-10, int(y0)), (w + 10, int(y1)), (235, 235, 235), int(rng.integers(1, 4)), cv2.LINE_AA)
    for _ in range(rng.integers(0, 4)):  # banners, equipment on the wall
        fill_polygon(img, random_shape(rng, w, int(max(horizon, 8)), rng.uniform(0.1, 0.4) * h),
                     _hsv_colour(rng, (0.5, 1), (0.5, 1)), True)
    return img


def grade(img: np.ndarray, rng) -> np.ndarray:
    """Lighting and camera, the same for both twins: exposure, sometimes a warm contrasty grade with a
    vignette, sometimes a little blur, then sensor noise."""
    h, w = img.shape[:2]
    img = img * rng.uniform(0.85, 1.15) + rng.uniform(-10, 10)
    if rng.uniform() < 0.4:
        img = img * np.array([0.85, 1.0, 1.12], np.float32) * rng.uniform(0.9, 1.1, 3).astype(np.float32)
        img = (img - 128) * rng.uniform(1.0, 1.2) + 128
        yy, xx = np.ogrid[0:h, 0:w]
        r2 = (((xx - w / 2) / w) ** 2 + ((yy - h / 2) / h) ** 2).astype(np.float32)
        img = img * (1 - rng.uniform(0.2, 0.5) * r2)[..., None]
    if rng.uniform() < 0.3:
        img = cv2.GaussianBlur(img, (3, 3), 0.8)
    # sensor noise: uniform integers with the given standard deviation (much cheaper than normals)
    half = int(round(NOISE_SIGMA * np.sqrt(3)))
    img = img + rng.integers(-half, half + 1, img.shape, dtype=np.int16)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------------------
# Scenes: people + occluders painted far to near, with label maps of who/what owns each pixel.
@dataclass
class Person:
    figure: Figure
    body: Body
    look: dict
    pose: dict


@dataclass
class Scene:
    image: np.ndarray  # (h, w, 3) uint8 BGR
    people: list[Person]
    owner: np.ndarray  # (h, w) uint8: 0 background, i + 1 person i, 255 occluder
    part: np.ndarray  # (h, w) uint8: part id of the owner (people only)


def sample_people(rng, style: Style, w: int, h: int) -> list[Person]:
    n = 1 + rng.choice(len(style.people_p), p=np.array(style.people_p))
    people = []
    for i in range(n):
        lo, hi = style.height_px
        if style.name == 'mpii' and i > 0:
            hi = lo + 0.6 * (hi - lo)  # bystanders are smaller
        height = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        pose, body, look = sample_pose(rng, style), sample_body(rng), sample_appearance(rng, style)
        ext = figure_extent(pose, body, height)
        if rng.uniform() < style.truncate_p:  # anywhere with some of the body inside
            anchor = rng.uniform(-0.25 * ext, np.array([w, h]) + 0.25 * ext)
        else:
            anchor = rng.uniform(np.minimum(ext / 2, [w / 2, h / 2]), np.maximum([w, h] - ext / 2, [w / 2, h / 2]))
        people.append(Person(layout_figure(pose, body, height, anchor), body, look, pose))
    # far (small) first, with some shuffling so small people sometimes stand in front
    order = np.argsort([p.figure.px_per_unit * rng.uniform(0.7, 1.3) for p in people], kind='stable')
    return [people[i] for i in order]


def render_scene(rng, style: Style, w: int, h: int) -> Scene:
    img = (mpii_background if rng.uniform() < style.venue_p else coco_background)(rng, h, w)
    people = sample_people(rng, style, w, h)
    owner, part = np.zeros((h, w), np.uint8), np.zeros((h, w), np.uint8)
    n_occ = int(rng.uniform() < style.occluder_p) * int(rng.integers(1, 3))
    occ_slots = rng.integers(1, len(people) + 1, n_occ)  # occluder painted after this many people
    for i in range(len(people) + 1):
        for _ in range(int(np.sum(occ_slots == i))):
            poly = random_shape(rng, w, h, rng.uniform(0.1, 0.35) * h)
            fill_polygon(img, poly, _hsv_colour(rng, (0, 0.8), (0.2, 0.9)), True)
            fill_polygon(owner, poly, 255, False)
            fill_polygon(part, poly, 0, False)
        if i == len(people):
            break
        p = people[i]
        for pt in figure_parts(p.figure, p.body, p.look):
            fill_polygon(img, pt.polygon, pt.colour, True)
            fill_polygon(owner, pt.polygon, i + 1, False)
            fill_polygon(part, pt.polygon, pt.part_id, False)
    return Scene(grade(img, rng), people, owner, part)


# ------------------------------------------------------------------------------------------------
# Truth per person: where each joint is, whether it is in the image and whether it is seen.
@dataclass
class PersonTruth:
    keypoints21: np.ndarray  # (21, 2) float64, 0-based pixels
    in_image21: np.ndarray  # (21,) bool
    visible21: np.ndarray  # (21,) bool: in the image, facing the camera and not covered
    face_hidden: np.ndarray  # (21,) bool: face points turned away (unlabelled in COCO)
    head_box: np.ndarray  # (4,) x1, y1, x2, y2 of the head (incl. hair)
    body_box: np.ndarray  # (4,) full body box, unclipped
    visible_mask: np.ndarray  # (h, w) bool: pixels of this person not covered by anything


def person_truth(scene: Scene, i: int) -> PersonTruth:
    h, w = scene.owner.shape
    p = scene.people[i]
    kp = p.figure.joints[:, :2].copy()
    in_image = (kp[:, 0] >= 0) & (kp[:, 0] <= w - 1) & (kp[:, 1] >= 0) & (kp[:, 1] <= h - 1)
    facing = face_point_visible(p.figure)
    face_hidden = np.array([name in facing and not facing[name] for name in UNION21_NAMES])
    seen = np.zeros(K21, bool)
    for j, name in enumerate(UNION21_NAMES):
        if in_image[j] and not face_hidden[j]:
            x, y = int(round(kp[j, 0])), int(round(kp[j, 1]))
            seen[j] = scene.owner[y, x] == i + 1 and scene.part[y, x] in JOINT_PARTS[name]
    s, A = p.figure.px_per_unit, p.figure.head_axes
    head = np.concatenate([projected_ellipsoid(p.figure.head_center, A, (0.4 * s, 0.52 * s, 0.45 * s)),
                           kp[[J['head_top'], J['upper_neck']]]])
    f = p.figure
    body = np.concatenate([kp, f.hands[:, :2], f.feet[:, :2], head])
    margin = 0.25 * s
    return PersonTruth(kp, in_image, seen, face_hidden, np.concatenate([head.min(0), head.max(0)]),
                       np.concatenate([body.min(0) - margin, body.max(0) + margin]), scene.owner == i + 1)


# ------------------------------------------------------------------------------------------------
# Writers: COCO and MPII formats, truth, atomic files.
def write_atomic(path: Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def write_jpeg(path: Path, image: np.ndarray) -> None:
    ok, buf = cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError(f'could not encode {path}')
    write_atomic(path, buf.tobytes())


def write_json(path: Path, obj, indent=None) -> None:
    write_atomic(path, json.dumps(obj, indent=indent).encode())


def coco_annotation(t: PersonTruth, ann_id: int, image_id: int) -> dict | None:
    """COCO person annotation, or None when nothing of the person is visible."""
    mask = t.visible_mask.astype(np.uint8)
    area = int(mask.sum())
    if area < 16:
        return None
    ys, xs = np.nonzero(mask)
    x1, y1, x2, y2 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    segmentation = [cv2.approxPolyDP(c, 1.0, True).reshape(-1).astype(float).tolist() for c in contours]
    segmentation = [s for s in segmentation if len(s) >= 6]
    labelled = t.in_image21[:17] & ~t.face_hidden[:17]
    v = np.where(labelled, np.where(t.visible21[:17], 2, 1), 0)
    xy = np.where(labelled[:, None], t.keypoints21[:17], 0.0)
    keypoints = np.concatenate([xy, v[:, None]], 1).reshape(-1)
    return {'segmentation': segmentation, 'num_keypoints': int(labelled.sum()), 'area': float(area), 'iscrowd': 0,
            'keypoints': [round(float(k), 2) if i % 3 < 2 else int(k) for i, k in enumerate(keypoints)],
            'image_id': image_id, 'bbox': [float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
            'category_id': 1, 'id': ann_id}


def coco_categories() -> list[dict]:
    return [{'supercategory': 'person', 'id': 1, 'name': 'person', 'keypoints': list(COCO17.joint_names),
             'skeleton': [[a + 1, b + 1] for a, b in COCO17.links]}]


MPII_UNION = union_indices(MPII16)


def mpii_record(t: PersonTruth, image_name: str) -> dict | None:
    """mmpose's MPII json row (1-based joints, centre/scale in MPII convention), or None if the person
    shows fewer than 6 of the 16 joints (MPII annotates people that are mostly in view)."""
    vis = t.in_image21[MPII_UNION]
    if vis.sum() < 6:
        return None
    joints = np.where(vis[:, None], t.keypoints21[MPII_UNION] + 1.0, -1.0)
    x1, y1, x2, y2 = t.body_box
    scale = max(x2 - x1, y2 - y1) / MPII_PIXEL_STD
    center = np.array([(x1 + x2) / 2 + 1, (y1 + y2) / 2 + 1 - MPII_CENTER_SHIFT * scale])
    return {'joints_vis': vis.astype(int).tolist(), 'joints': np.round(joints, 2).tolist(), 'image': image_name,
            'scale': round(float(scale), 6), 'center': np.round(center, 2).tolist()}


def write_mpii_gt_mat(path: Path, truths: list[PersonTruth], records: list[dict]) -> None:
    """mpii_gt_val.mat as the real one: head boxes, missing joints, 1-based positions, joint names."""
    from scipy.io import savemat
    n = len(truths)
    headboxes = np.zeros((2, 2, n))
    pos = np.zeros((16, 2, n))
    missing = np.zeros((16, n))
    for k, (t, r) in enumerate(zip(truths, records)):
        headboxes[:, :, k] = t.head_box.reshape(2, 2) + 1.0
        pos[:, :, k] = np.array(r['joints'])
        missing[:, k] = 1 - np.array(r['joints_vis'])
    names = np.empty((1, 16), dtype=object)
    for k, name in enumerate(MPII_MAT_JOINT_NAMES):
        names[0, k] = name
    buf = io.BytesIO()
    savemat(buf, {'headboxes_src': headboxes, 'jnt_missing': missing, 'pos_gt_src': pos, 'dataset_joints': names})
    data = bytearray(buf.getvalue())
    # the 116-byte text header carries a creation time; a fixed one keeps the file bit-identical per seed
    data[:116] = b'MATLAB 5.0 MAT-file, Platform: posix, Created by: data/synthetic.py'.ljust(116, b' ')
    write_atomic(path, bytes(data))


def truth_arrays(truths: list[PersonTruth], keys: list[int], image_ids: list[int]) -> dict:
    head = np.array([t.head_box for t in truths]).reshape(-1, 4)
    return {'instance_key': np.array(keys, np.int64), 'image_id': np.array(image_ids, np.int64),
            'keypoints21': np.array([t.keypoints21 for t in truths], np.float32).reshape(-1, K21, 2),
            'visible21': np.array([t.visible21 for t in truths], bool).reshape(-1, K21),
            'in_image21': np.array([t.in_image21 for t in truths], bool).reshape(-1, K21),
            'head_size': (0.6 * np.hypot(head[:, 2] - head[:, 0], head[:, 3] - head[:, 1])).astype(np.float32),
            'body_box': np.array([t.body_box for t in truths], np.float32).reshape(-1, 4)}


def write_truth(path: Path, arrays: dict) -> None:
    # uncompressed npz: bytes depend only on the arrays; the temporary name ends in .npz as np.savez wants
    atomic_write(path, lambda tmp: np.savez(tmp, **arrays))


# ------------------------------------------------------------------------------------------------
# Generation.
def image_rng(seed: int, style: Style, index: int) -> np.random.Generator:
    """One generator per image, so any image can be regenerated alone."""
    return np.random.default_rng([seed, STYLES.index(style.name), index])


def split_of(index: int, n_images: int, val_fraction: float) -> str:
    return 'val' if index >= n_images - int(round(n_images * val_fraction)) else 'train'


def make_coco_twin(root: Path, n_images: int, seed: int, val_fraction: float, size: tuple[int, int]) -> dict:
    w, h = size
    images = {s: [] for s in SPLITS}
    anns = {s: [] for s in SPLITS}
    truths = {s: [] for s in SPLITS}
    for index in range(n_images):
        split, image_id = split_of(index, n_images, val_fraction), index + 1
        scene = render_scene(image_rng(seed, COCO_STYLE, index), COCO_STYLE, w, h)
        name = f'{image_id:012d}.jpg'
        write_jpeg(root / 'images' / split / name, scene.image)
        images[split].append({'id': image_id, 'file_name': name, 'width': w, 'height': h})
        for i in range(len(scene.people)):
            t = person_truth(scene, i)
            ann = coco_annotation(t, image_id * 10 + i + 1, image_id)
            if ann is not None:
                anns[split].append(ann)
                truths[split].append((t, ann['id'], image_id))
    summary = {}
    for split in SPLITS:
        write_json(root / 'annotations' / f'person_keypoints_{split}.json',
                   {'info': {'description': 'synthetic COCO-style twin', 'seed': seed}, 'licenses': [],
                    'images': images[split], 'annotations': anns[split], 'categories': coco_categories()})
        ts, keys, ids = zip(*truths[split]) if truths[split] else ((), (), ())
        write_truth(root / 'annotations' / f'truth21_{split}.npz', truth_arrays(list(ts), list(keys), list(ids)))
        summary[split] = {'images': len(images[split]), 'instances': len(anns[split])}
    return summary


def make_mpii_twin(root: Path, n_images: int, seed: int, val_fraction: float, size: tuple[int, int]) -> dict:
    w, h = size
    rows = {s: [] for s in SPLITS}
    truths = {s: [] for s in SPLITS}
    n_img = {s: 0 for s in SPLITS}
    for index in range(n_images):
        split, image_id = split_of(index, n_images, val_fraction), index + 1
        scene = render_scene(image_rng(seed, MPII_STYLE, index), MPII_STYLE, w, h)
        name = f'{image_id:09d}.jpg'
        write_jpeg(root / 'images' / name, scene.image)
        n_img[split] += 1
        for i in range(len(scene.people)):
            t = person_truth(scene, i)
            record = mpii_record(t, name)
            if record is not None:
                truths[split].append((t, len(rows[split]), image_id))
                rows[split].append(record)
    summary = {}
    for split in SPLITS:
        write_json(root / 'annotations' / f'mpii_{split}.json', rows[split], indent=4)
        ts, keys, ids = zip(*truths[split]) if truths[split] else ((), (), ())
        write_truth(root / 'annotations' / f'truth21_{split}.npz', truth_arrays(list(ts), list(keys), list(ids)))
        if split == 'val':
            write_mpii_gt_mat(root / 'annotations' / 'mpii_gt_val.mat', list(ts), rows[split])
        summary[split] = {'images': n_img[split], 'instances': len(rows[split])}
    return summary


def make_synthetic(out_dir, n_images: int = 1000, seed: int = 0, val_fraction: float = 0.2,
                   image_size: tuple[int, int] = (256, 256), styles=STYLES) -> dict:
    """Write both twins (n_images images EACH) under out_dir; same seed -> bit-identical files.
    image_size is (width, height). Returns a summary with image/instance counts per twin and split."""
    if n_images < 1:
        raise ValueError(f'n_images must be >= 1, got {n_images}')
    if not 0 <= val_fraction < 1:
        raise ValueError(f'val_fraction must be in [0, 1), got {val_fraction}')
    unknown = set(styles) - set(STYLES)
    if unknown:
        raise ValueError(f'unknown synthetic styles {sorted(unknown)}; known: {list(STYLES)}')
    out = Path(out_dir)
    size = (int(image_size[0]), int(image_size[1]))
    summary = {'out_dir': str(out), 'seed': seed, 'n_images': n_images, 'image_size': size}
    for name, make in (('coco', make_coco_twin), ('mpii', make_mpii_twin)):
        if name in styles:
            t0 = time.perf_counter()
            summary[name] = make(out / name, n_images, seed, val_fraction, size)
            summary[name]['seconds'] = round(time.perf_counter() - t0, 2)
    return summary


# ------------------------------------------------------------------------------------------------
# Reading the truth back.
def load_truth(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'synthetic truth file not found: {path}')
    with np.load(path) as z:
        missing = [k for k in TRUTH_KEYS if k not in z.files]
        if missing:
            raise ValueError(f'{path}: not a synthetic truth file, missing arrays {missing}')
        return {k: z[k] for k in z.files}


def truth_rows(table: InstanceTable, truth: dict) -> np.ndarray:
    """Index into the truth arrays of each table row, matched by instance_key. Raises if a row has no truth."""
    keys, wanted = truth['instance_key'], np.asarray(table.instance_key)
    order = np.argsort(keys, kind='stable')
    pos = np.minimum(np.searchsorted(keys[order], wanted), max(len(keys) - 1, 0))
    found = keys[order][pos] == wanted if len(keys) else np.zeros(len(wanted), bool)
    if not np.all(found):
        raise KeyError(f'{int((~found).sum())} instances have no synthetic truth (instance_key e.g. '
                       f'{wanted[~found][:5].tolist()}); was the table loaded from the truth file\'s split?')
    return order[pos]


def match_truth(table: InstanceTable, truth: dict, mask: str = 'visible21') -> tuple[np.ndarray, np.ndarray]:
    """Truth keypoints (N, 21, 2) and a (N, 21) bool mask ('visible21' or 'in_image21') for each
    table row, matched by instance_key. Raises if a row has no truth."""
    if mask not in ('visible21', 'in_image21'):
        raise ValueError(f"mask must be 'visible21' or 'in_image21', got {mask!r}")
    rows = truth_rows(table, truth)
    return truth['keypoints21'][rows], truth[mask][rows].astype(bool)
