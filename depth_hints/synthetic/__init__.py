"""A procedural stereo driving world, written to disk in the KITTI raw layout (a subpackage).

KITTI itself cannot be shipped with the project, so this module builds small
street scenes (textured road with lane markings, kerbs and pavements, building
facades with windows, parked cars, and many thin structures such as lamp
poles, sign posts, railings, bollards and tree trunks), renders them with a
vectorised numpy ray caster, and writes everything the real code paths
expect: rectified colour stereo pairs (``image_02`` / ``image_03``), a 64-beam
LiDAR sweep (``velodyne_points``), dense ground-truth depth in the layout of
the KITTI depth benchmark (``proj_depth/groundtruth``), a thin-structure label
(``thin_mask``), calibration text files and Eigen-style split lists.

The same world is also written in SceneFlow's FlyingThings3D layout
(:func:`write_synthetic_sceneflow`): a 35 mm-like rig (fx = 1050 W / 960,
principal point at the centre), clean and final passes as PNG, and PFM
disparities fx * B / depth with B = 1 m = 1 SceneFlow scene unit.

Public entry points: :func:`make_world`, :func:`render_view`,
:func:`render_stereo_frame`, :func:`lidar_sweep`, :func:`camera_to_world`,
:func:`velo_to_world`, :func:`intrinsics`, :func:`projection_matrix` and the
writers :func:`write_synthetic_kitti` and :func:`write_synthetic_sceneflow`.
Nothing happens at import time.

Rooms: ``scene`` (rig constants, world builder), ``textures``, ``renderer`` (ray caster and
shading), ``lidar``, ``kitti_writer`` and ``sceneflow_writer`` (the layout writers).
"""
from __future__ import annotations

from .scene import (DATE, BASELINE, CAMERA_HEIGHT, CAMERA_X, NORMALISED_INTRINSICS, VELO_TO_CAM_R,
                    VELO_TO_CAM_T, MAX_GT_DEPTH, KITTI_PIXEL_OFFSET, World, intrinsics,
                    projection_matrix, velo_to_cam_matrix, drive_name, make_world, camera_to_world,
                    velo_to_world, LIDAR_MAX_RANGE)  # noqa: F401
from .renderer import (render_view, render_stereo_frame)  # noqa: F401
from .lidar import (lidar_sweep)  # noqa: F401
from .kitti_writer import (cam_to_cam_text, velo_to_cam_text, write_synthetic_kitti, _frame_paths)  # noqa: F401
from .sceneflow_writer import (SCENEFLOW_RIG_BASELINE, sceneflow_intrinsics, sceneflow_folders,
                               sceneflow_views, sceneflow_final_pass, write_synthetic_sceneflow)  # noqa: F401

__all__ = [
    'DATE', 'BASELINE', 'CAMERA_HEIGHT', 'CAMERA_X', 'NORMALISED_INTRINSICS', 'VELO_TO_CAM_R',
    'VELO_TO_CAM_T', 'MAX_GT_DEPTH', 'KITTI_PIXEL_OFFSET', 'World', 'intrinsics',
    'projection_matrix', 'velo_to_cam_matrix', 'drive_name', 'make_world', 'camera_to_world',
    'velo_to_world', 'render_view', 'render_stereo_frame', 'lidar_sweep', 'cam_to_cam_text',
    'velo_to_cam_text', 'write_synthetic_kitti', 'SCENEFLOW_RIG_BASELINE',
    'sceneflow_intrinsics', 'sceneflow_folders', 'sceneflow_views', 'sceneflow_final_pass',
    'write_synthetic_sceneflow'
]
