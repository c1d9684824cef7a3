"""Painting a scene of the synthetic twins: the figures' parts as polygons far to near, backgrounds,
occluders and lighting, with label maps of who owns each pixel; and each person's truth (where
every joint is, whether it is in the image and whether it is seen)."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from data.twins.figure import (
    FIGURE_JOINTS, HEAD, J, JOINT_PARTS, L_FOOT, L_FOREARM, L_HAND, L_SHIN, L_THIGH, L_UPPER_ARM, NECK, NOISE_SIGMA, R_FOOT,
    R_FOREARM, R_HAND, R_SHIN, R_THIGH, R_UPPER_ARM, TORSO, Body, Figure, Style, figure_extent, hsv_colour,
    layout_figure, sample_appearance, sample_body, sample_pose, side_shade, unit_vector)

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
    lateral_top = unit_vector(j[J['left_shoulder']] - j[J['right_shoulder']])
    lateral_bot = unit_vector(j[J['left_hip']] - j[J['right_hip']])
    spine = unit_vector(j[J['thorax']] - j[J['pelvis']])
    depth_top, depth_bot = unit_vector(np.cross(lateral_top, spine)), unit_vector(np.cross(lateral_bot, spine))
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
    normals = {'nose': fwd, 'left_eye': unit_vector(0.8 * fwd + 0.6 * left), 'right_eye': unit_vector(0.8 * fwd - 0.6 * left),
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
                     hsv_colour(rng, (0.5, 1), (0.5, 1)), True)
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
            fill_polygon(img, poly, hsv_colour(rng, (0, 0.8), (0.2, 0.9)), True)
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
    keypoints: np.ndarray  # (K, 2) float64, 0-based pixels, the figure's joints (figure.FIGURE_JOINTS)
    in_image: np.ndarray  # (K,) bool
    visible: np.ndarray  # (K,) bool: in the image, facing the camera and not covered
    face_hidden: np.ndarray  # (K,) bool: face points turned away (unlabelled in COCO)
    head_box: np.ndarray  # (4,) x1, y1, x2, y2 of the head (incl. hair)
    body_box: np.ndarray  # (4,) full body box, unclipped
    visible_mask: np.ndarray  # (h, w) bool: pixels of this person not covered by anything
    activity: str  # the pose activity the figure was drawn doing (figure.Style.activities)


def person_truth(scene: Scene, i: int) -> PersonTruth:
    h, w = scene.owner.shape
    p = scene.people[i]
    kp = p.figure.joints[:, :2].copy()
    in_image = (kp[:, 0] >= 0) & (kp[:, 0] <= w - 1) & (kp[:, 1] >= 0) & (kp[:, 1] <= h - 1)
    facing = face_point_visible(p.figure)
    face_hidden = np.array([name in facing and not facing[name] for name in FIGURE_JOINTS])
    seen = np.zeros(len(FIGURE_JOINTS), bool)
    for j, name in enumerate(FIGURE_JOINTS):
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
                       np.concatenate([body.min(0) - margin, body.max(0) + margin]), scene.owner == i + 1,
                       p.pose['activity'])
