"""Pose evaluation on KITTI odometry sequences 09 and 10 (the SfMLearner / monodepth2 protocol).

The pose network predicts the motion between consecutive frames (t, t+1) of
``splits/odom/test_files_<seq>.txt``; ground truth comes from ``<data_path>/poses/<seq>.txt``
(one 3x4 camera-to-world matrix per line, 12 numbers). Both are cut into 5-frame snippets whose
positions are compared after aligning the first frame and a least-squares scale: the absolute
trajectory error (ATE), reported as mean and standard deviation over the snippets.
"""
from __future__ import annotations

from depth_hints.errors import DepthHintsError
import json
import os
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from datasets.kitti_odom import KittiOdomLayout
from depth_hints.atomic import atomic_write
from depth_hints.geometry import transformation_from_parameters
from depth_hints.images import load_rgb
from depth_hints.inference import to_input_tensor
from depth_hints.options import device_from, usable_cores
from depth_hints.splits import read_split_file, split_dir
from depth_hints.trainer import loader_workers

TRACK_LENGTH = 5
ODOM_SEQUENCES = {"odom_9": 9, "odom_10": 10}


class PoseEvaluationError(DepthHintsError, FileNotFoundError):
    """Missing or mismatched pose-evaluation inputs; the message names the file."""


# ----------------------------------------------------------------------------- pure math

def accumulate_positions(relative_poses) -> np.ndarray:
    """Chain relative 4x4 transforms from the identity -> camera positions [len+1, 3]
    (the first is the origin)."""
    pose = np.eye(4)
    positions = [pose[:3, 3].copy()]
    for relative in relative_poses:
        pose = pose @ relative
        positions.append(pose[:3, 3].copy())
    return np.array(positions)


def compute_ate(gtruth_xyz: np.ndarray, pred_xyz: np.ndarray) -> float:
    """Absolute trajectory error of a snippet: positions [N,3] each. The prediction is shifted
    so the first positions coincide, then scaled by s = sum(gt . pred) / sum(pred^2);
    ATE = sqrt(sum |s pred - gt|^2) / N (the protocol's normalisation)."""
    gtruth_xyz = np.asarray(gtruth_xyz, dtype=np.float64)
    pred_xyz = np.asarray(pred_xyz, dtype=np.float64)
    aligned = pred_xyz + (gtruth_xyz[0] - pred_xyz[0])[None, :]
    denominator = np.sum(aligned ** 2)
    scale = np.sum(gtruth_xyz * aligned) / denominator if denominator > 0 else 0.0
    residual = aligned * scale - gtruth_xyz
    return float(np.sqrt(np.sum(residual ** 2)) / gtruth_xyz.shape[0])


def relative_gt_poses(global_poses: np.ndarray) -> np.ndarray:
    """Camera-to-world poses [N,4,4] -> [N-1,4,4] motions in the network's convention:
    inverse(inverse(G_{t-1}) @ G_t), which maps points of frame t-1 into frame t."""
    return np.stack([np.linalg.inv(np.linalg.inv(global_poses[t - 1]) @ global_poses[t])
                     for t in range(1, len(global_poses))])


def snippet_ates(gt_relative: np.ndarray, pred_relative: np.ndarray,
                 track_length: int = TRACK_LENGTH) -> np.ndarray:
    """ATE of every snippet of ``track_length`` frames starting at each frame -> [N]."""
    errors = []
    for start in range(len(gt_relative)):
        gt_xyz = accumulate_positions(gt_relative[start:start + track_length - 1])
        pred_xyz = accumulate_positions(pred_relative[start:start + track_length - 1])
        errors.append(compute_ate(gt_xyz, pred_xyz))
    return np.array(errors)


# ----------------------------------------------------------------------------- files

def read_gt_poses(path: str | os.PathLike) -> np.ndarray:
    """KITTI odometry poses file (12 numbers per line, a row-major 3x4) -> [N,4,4]."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise PoseEvaluationError(f"Ground-truth poses {path} do not exist (KITTI odometry "
                                  f"data_odometry_poses: <data_path>/poses/<seq>.txt).")
    values = np.loadtxt(path, ndmin=2)
    if values.shape[1] != 12:
        raise PoseEvaluationError(f"{path}: {values.shape[1]} numbers per line; expected 12.")
    poses = np.tile(np.eye(4), (len(values), 1, 1))
    poses[:, :3, :] = values.reshape(-1, 3, 4)
    return poses


def _existing_image(data_path: str, sequence: int, frame_index: int, side: str, png: bool) -> str:
    """The odometry image of a frame (``KittiOdomLayout``), .png or .jpg, whichever exists
    (--png: .png first)."""
    preferred, other = (".png", ".jpg") if png else (".jpg", ".png")
    path = KittiOdomLayout(data_path, preferred).image_path(str(sequence), frame_index, side)
    if os.path.isfile(path):
        return path
    alternative = KittiOdomLayout(data_path, other).image_path(str(sequence), frame_index, side)
    if os.path.isfile(alternative):
        return alternative
    raise PoseEvaluationError(f"Odometry image {path} does not exist (nor {other}); check "
                              f"--data_path {data_path} and --png.")


class _PairList(torch.utils.data.Dataset):
    """(frame t, frame t+1) image paths -> [6,H,W] in [0,1]."""

    def __init__(self, pairs, height: int, width: int):
        self.pairs, self.height, self.width = list(pairs), height, width

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, index):
        images = [to_input_tensor(load_rgb(p, PoseEvaluationError), self.width, self.height)[0] for p in self.pairs[index]]
        return torch.cat(images, 0)


# ----------------------------------------------------------------------------- model

def load_pose_model(folder: str, pose_model_type: str = "separate_resnet", device=None):
    """Weights folder -> a function: frame pairs [B,6,H,W] -> motions [B,4,4] (frame t -> t+1).

    ``separate_resnet``: pose_encoder.pth (ResNet, 2 input images) + pose.pth (PoseDecoder);
    ``posecnn``: pose.pth (PoseCNN over 2 frames)."""
    import networks
    from depth_hints.checkpoints import load_pose_networks, load_state

    device = device or torch.device("cpu")
    if not os.path.isdir(folder):
        raise PoseEvaluationError(f"Weights folder {folder!r} does not exist (--load_weights_folder).")
    if pose_model_type == "separate_resnet":
        encoder, decoder = load_pose_networks(folder, device)

        def predict(pairs):
            return decoder([encoder(pairs)])
    elif pose_model_type == "posecnn":
        net = networks.PoseCNN(2)
        net.load_state_dict(load_state(folder, "pose"))
        net.to(device).eval()

        def predict(pairs):
            return net(pairs)
    else:
        raise PoseEvaluationError(f"--pose_model_type {pose_model_type}: pose evaluation supports "
                                  f"separate_resnet and posecnn.")

    @torch.no_grad()
    def motion(pairs: torch.Tensor) -> torch.Tensor:
        axisangle, translation = predict(pairs.to(device))
        return transformation_from_parameters(axisangle[:, 0], translation[:, 0])

    return motion


def evaluate_pose(options, split_folder: str | os.PathLike | None = None) -> dict:
    """Predict frame-to-frame motion over an odometry test sequence and report the 5-frame ATE
    -> {"ate_mean", "ate_std", "sequence", "n"}. ``options``: EvaluatePoseOptions;
    ``split_folder`` defaults to the project's splits/odom."""
    sequence = ODOM_SEQUENCES[options.eval_split]
    folder = Path(split_folder) if split_folder else split_dir("odom")
    samples = read_split_file(folder / f"test_files_{sequence:02d}.txt")
    gt_path = KittiOdomLayout(options.data_path).poses_path(sequence)
    gt_global = read_gt_poses(gt_path)
    if len(samples) != len(gt_global) - 1:
        raise PoseEvaluationError(f"{folder / f'test_files_{sequence:02d}.txt'} lists {len(samples)} "
                                  f"frame pairs but {gt_path} has {len(gt_global)} poses; expected "
                                  f"one pair per consecutive pose.")
    pairs = [(_existing_image(options.data_path, int(s.folder), s.frame_index, s.side, options.png),
              _existing_image(options.data_path, int(s.folder), s.frame_index + 1, s.side, options.png))
             for s in samples]

    device = device_from(options.no_cuda)
    print(f"-> Loading weights from {options.load_weights_folder}")
    motion = load_pose_model(options.load_weights_folder, options.pose_model_type, device)
    workers = loader_workers(options.num_workers, usable_cores())  # capped as in training
    loader = torch.utils.data.DataLoader(_PairList(pairs, options.height, options.width),
                                         batch_size=options.batch_size, shuffle=False,
                                         num_workers=workers)
    print(f"-> Predicting {len(pairs)} frame pairs of sequence {sequence:02d} on {device} "
          f"({workers} loader worker{'s' * (workers != 1)})")
    pred_relative = np.concatenate([motion(batch).cpu().numpy().astype(np.float64)
                                    for batch in tqdm(loader, desc="pose", unit="batch")])

    ates = snippet_ates(relative_gt_poses(gt_global), pred_relative)
    result = {"sequence": sequence, "n": int(len(ates)), "ate_mean": float(np.mean(ates)),
              "ate_std": float(np.std(ates))}
    print(f"\n   Trajectory error: {result['ate_mean']:0.3f}, std: {result['ate_std']:0.3f}\n")

    poses_path = os.path.join(options.load_weights_folder, "poses.npy")
    with atomic_write(poses_path, "wb") as f:
        np.save(f, pred_relative)
    print(f"-> Predictions saved to {poses_path}")
    if options.output_json:
        with atomic_write(options.output_json, "w") as f:
            json.dump(result, f, indent=2)
    return result
