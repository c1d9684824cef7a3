"""The figure model of the synthetic twins: the two styles (what differs between the twins), a small
3-D stick body (unit = one head height) posed, rotated and projected orthographically, with every
joint a dataset type names (data.skeletons.TWIN_FIGURE), and its looks. Pure numpy."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from data.skeletons import TWIN_FIGURE

FIGURE_JOINTS = TWIN_FIGURE.joint_names
J = {name: i for i, name in enumerate(FIGURE_JOINTS)}

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


# Both draw every activity, in different mixes: COCO has its sports photographs (13% here), MPII its
# everyday ones (10%). With disjoint mixes (half of MPII-style figures doing what no COCO-style figure
# did) the COCO teacher lost a third of its accuracy on the other twin (docs/results.md).
COCO_STYLE = Style('coco', people_p=(0.45, 0.35, 0.20), height_px=(60, 200), truncate_p=0.2, occluder_p=0.35,
                   activities={'stand': 0.24, 'walk': 0.2, 'sit': 0.12, 'gesture': 0.1, 'bend': 0.08,
                               'run': 0.08, 'reach': 0.05, 'star': 0.03, 'squat': 0.04, 'lunge': 0.03,
                               'kick': 0.03},
                   large_roll_p=0.04, venue_p=0.4)
MPII_STYLE = Style('mpii', people_p=(0.6, 0.3, 0.1), height_px=(80, 210), truncate_p=0.08, occluder_p=0.15,
                   activities={'stand': 0.12, 'walk': 0.08, 'run': 0.14, 'star': 0.1, 'squat': 0.12,
                               'lunge': 0.1, 'kick': 0.08, 'reach': 0.08, 'gesture': 0.08, 'sit': 0.05,
                               'bend': 0.05},
                   large_roll_p=0.06, venue_p=0.6)
# AI Challenger: everyday scenes, often several people.
AIC_STYLE = Style('aic', people_p=(0.4, 0.35, 0.25), height_px=(70, 200), truncate_p=0.12, occluder_p=0.25,
                  activities={'stand': 0.2, 'walk': 0.18, 'sit': 0.1, 'gesture': 0.1, 'bend': 0.06,
                              'run': 0.08, 'reach': 0.08, 'star': 0.04, 'squat': 0.06, 'lunge': 0.05,
                              'kick': 0.05},
                  large_roll_p=0.04, venue_p=0.3)
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


def unit_vector(v: np.ndarray) -> np.ndarray:
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


def hsv_colour(rng, sat, val) -> np.ndarray:
    hsv = np.uint8([[[rng.integers(0, 180), rng.uniform(*sat) * 255, rng.uniform(*val) * 255]]])
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float64)


SKIN_TONES = np.array([(185, 205, 240), (150, 180, 225), (120, 160, 210), (95, 135, 190), (75, 105, 160),
                       (55, 80, 125), (45, 60, 95)], dtype=np.float64)  # BGR
HAIR_COLOURS = np.array([(20, 20, 25), (30, 45, 80), (40, 80, 130), (110, 170, 215), (150, 150, 155),
                         (35, 60, 150)], dtype=np.float64)


def sample_appearance(rng: np.random.Generator, style: Style) -> dict:
    skin = SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.92, 1.08)
    shirt = hsv_colour(rng, CLOTHES_SATURATION, CLOTHES_VALUE)
    pants = hsv_colour(rng, CLOTHES_SATURATION, (0.15, 0.7))
    return {'skin': skin, 'hair': HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))], 'shirt': shirt, 'pants': pants,
            'shoes': hsv_colour(rng, (0, 0.5), (0.05, 0.4)),
            'long_sleeves': rng.uniform() < 0.4, 'long_pants': rng.uniform() < 0.55}


def side_shade(colour: np.ndarray, left: bool) -> np.ndarray:
    """Left limbs a little lighter, right limbs a little darker: a consistent cue a small net can use
    for left/right, like the context real images give."""
    return np.clip(colour * 1.18 + 14 if left else colour * 0.8, 0, 255)


# ------------------------------------------------------------------------------------------------
# Figure layout: pose + body -> 3-D joints (body frame, head units).
@dataclass
class Figure:
    joints: np.ndarray  # (K, 3) FIGURE_JOINTS in the image frame: x, y pixels (0-based), z pixels towards the camera
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
        foot_dir = unit_vector(rot_y(sgn * 10) @ fwd - 0.3 * d_shin)
        feet.append(pts[f'{side}_ankle'] + L['foot'] * foot_dir)
    return {'joints': np.stack([pts[n] for n in FIGURE_JOINTS]), 'head_center': head_center,
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
