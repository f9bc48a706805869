"""Exporting a depth network as one graph (ONNX or TorchScript), and the metadata it carries.

The graph: normalised RGB ``image`` [B,3,H,W] in [0,1] -> ``disp`` [B,1,H,W], the decoder's
finest-scale sigmoid disparity; with ``metric=True`` also ``depth`` [B,1,H,W] in metres
(``metric_scale_factor`` x the depth of ``disp_to_depth(disp, min_depth, max_depth)``).
The batch size is dynamic; with ``dynamic_size`` so are H and W (multiples of 32).

Metadata (ONNX ``metadata_props``; TorchScript extra file ``depth_hints.json``), all strings:
``depth_hints_format`` (FORMAT_VERSION), ``height``, ``width`` (the size the model was trained
at and exported for), ``dynamic_size``, ``metric_scale_factor``, ``min_depth``, ``max_depth``,
``use_stereo`` (``true``/``false``/``unknown``), ``num_layers``, ``outputs`` (comma list) and
``training_options`` (the run's opt.json as JSON, ``{}`` for released folders).
"""
from __future__ import annotations

import inspect
import io
import json
import os
import warnings
from dataclasses import asdict, dataclass

import torch
from torch import nn

from depth_hints.checkpoints import CheckpointError, load_depth_model, metric_scale_factor
from depth_hints.errors import DepthHintsError
from depth_hints.geometry import STEREO_SCALE_FACTOR, disp_to_depth
# the training range of disp_to_depth when a folder records none (monodepth2's defaults)
from depth_hints.options import DEFAULT_MAX_DEPTH, DEFAULT_MIN_DEPTH
from depth_hints.options import _check_size as check_size

FORMAT_VERSION = "1"
FORMAT_KEY = "depth_hints_format"
TORCHSCRIPT_METADATA_FILE = "depth_hints.json"
ONNX_OPSET = 17
FORMATS = ("onnx", "torchscript")


class ModelFileError(DepthHintsError, ValueError):
    """An exported model file that is missing, unreadable or lacks our metadata."""


@dataclass(frozen=True)
class ExportMetadata:
    """What an exported file says about its model (see the module docstring for the keys)."""
    height: int
    width: int
    dynamic_size: bool
    metric_scale_factor: float
    min_depth: float
    max_depth: float
    use_stereo: bool | None
    num_layers: int
    outputs: tuple[str, ...]
    training_options: dict

    def to_strings(self) -> dict[str, str]:
        """Key -> string, as stored in the file."""
        values = asdict(self)
        strings = {FORMAT_KEY: FORMAT_VERSION}
        for key, value in values.items():
            if key == "training_options":
                strings[key] = json.dumps(value, sort_keys=True)
            elif key == "outputs":
                strings[key] = ",".join(value)
            elif isinstance(value, bool) or value is None:
                strings[key] = {True: "true", False: "false", None: "unknown"}[value]
            else:
                strings[key] = repr(value) if isinstance(value, float) else str(value)
        return strings

    @classmethod
    def from_strings(cls, strings: dict[str, str], path: str) -> "ExportMetadata":
        """Parse stored strings; a file without our keys raises naming ``path`` and the fix."""
        if strings.get(FORMAT_KEY) != FORMAT_VERSION:
            raise ModelFileError(
                f"{path} carries no depth-hints metadata ({FORMAT_KEY}={FORMAT_VERSION!r} missing); "
                f"export it with `depth-hints-export --load_weights_folder W --out {path}`.")
        try:
            return cls(height=int(strings["height"]), width=int(strings["width"]),
                       dynamic_size=strings["dynamic_size"] == "true",
                       metric_scale_factor=float(strings["metric_scale_factor"]),
                       min_depth=float(strings["min_depth"]), max_depth=float(strings["max_depth"]),
                       use_stereo={"true": True, "false": False}.get(strings["use_stereo"]),
                       num_layers=int(strings["num_layers"]),
                       outputs=tuple(strings["outputs"].split(",")),
                       training_options=json.loads(strings["training_options"]))
        except (KeyError, ValueError) as e:
            raise ModelFileError(f"{path} has incomplete depth-hints metadata ({type(e).__name__}: {e}); "
                                 f"export it again with depth-hints-export.") from None


class DepthGraph(nn.Module):
    """Encoder + depth decoder as one module: image [B,3,H,W] in [0,1] -> disp [B,1,H,W]
    (sigmoid, finest scale), and with ``metric`` also depth [B,1,H,W] in metres."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, metric: bool = False,
                 metric_scale_factor: float = STEREO_SCALE_FACTOR, min_depth: float = DEFAULT_MIN_DEPTH,
                 max_depth: float = DEFAULT_MAX_DEPTH) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.metric = metric
        self.metric_scale_factor = float(metric_scale_factor)
        self.min_depth = float(min_depth)
        self.max_depth = float(max_depth)

    def forward(self, image: torch.Tensor):
        """[B,3,H,W] in [0,1] -> disp [B,1,H,W], or (disp, depth in metres) with ``metric``."""
        disp = self.decoder(self.encoder(image))[("disp", 0)]
        if not self.metric:
            return disp
        _, depth = disp_to_depth(disp, self.min_depth, self.max_depth)
        return disp, self.metric_scale_factor * depth


def graph_from_folder(folder: str, metric: bool = False, device=None) -> tuple[DepthGraph, ExportMetadata]:
    """Weights folder -> (DepthGraph in eval mode, its metadata at the folder's trained size)."""
    encoder, decoder, info = load_depth_model(folder, device)
    options = info.options
    try:
        factor = metric_scale_factor(folder)
    except CheckpointError:
        if metric:  # a mixed-rig training set recorded no single factor
            raise
        factor = float("nan")  # disparity only; the predictor then gives no metric depth
    min_depth = float(options.get("min_depth", DEFAULT_MIN_DEPTH))
    max_depth = float(options.get("max_depth", DEFAULT_MAX_DEPTH))
    graph = DepthGraph(encoder, decoder, metric, factor, min_depth, max_depth).eval()
    height, width = info.feed_size()
    metadata = ExportMetadata(height=height, width=width, dynamic_size=False,
                              metric_scale_factor=factor, min_depth=min_depth, max_depth=max_depth,
                              use_stereo=info.use_stereo, num_layers=info.num_layers,
                              outputs=("disp", "depth") if metric else ("disp",),
                              training_options=options)
    return graph, metadata


def _atomic_write_bytes(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def onnx_bytes(graph: DepthGraph, metadata: ExportMetadata) -> bytes:
    """The serialised ONNX model (opset ONNX_OPSET, legacy TorchScript-based exporter, so no
    onnxscript is needed) with ``metadata`` in ``metadata_props``."""
    import onnx

    example = torch.rand(1, 3, metadata.height, metadata.width,
                         device=next(graph.parameters()).device)
    axes = {0: "batch", 2: "height", 3: "width"} if metadata.dynamic_size else {0: "batch"}
    dynamic_axes = {name: axes for name in ("image",) + metadata.outputs}
    kwargs = {}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and folding notes
        torch.onnx.export(graph, (example,), buffer, opset_version=ONNX_OPSET,
                          input_names=["image"], output_names=list(metadata.outputs),
                          dynamic_axes=dynamic_axes, do_constant_folding=True, **kwargs)
    model = onnx.load_from_string(buffer.getvalue())
    for key, value in metadata.to_strings().items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = "depth-hints"
    return model.SerializeToString()


def torchscript_module(graph: DepthGraph, metadata: ExportMetadata) -> torch.jit.ScriptModule:
    """The traced graph. Any batch size and any multiple-of-32 size run: the trace bakes in no
    size (``dynamic_size`` only matters for ONNX)."""
    example = torch.rand(1, 3, metadata.height, metadata.width,
                         device=next(graph.parameters()).device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.trace(graph, example, check_trace=False)


def export_graph(graph: DepthGraph, metadata: ExportMetadata, out: str, fmt: str) -> str:
    """Write ``graph`` to ``out`` as ``fmt`` ("onnx" or "torchscript"), atomically; returns out."""
    check_size(metadata.height, metadata.width)
    if fmt not in FORMATS:
        raise ModelFileError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}.")
    out_dir = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(out_dir):
        raise ModelFileError(f"--out {out}: folder {out_dir} does not exist; create it first.")
    graph = graph.eval()
    if fmt == "onnx":
        _atomic_write_bytes(out, onnx_bytes(graph, metadata))
    else:
        module = torchscript_module(graph, metadata)
        buffer = io.BytesIO()
        extra = {TORCHSCRIPT_METADATA_FILE: json.dumps(metadata.to_strings(), sort_keys=True)}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit's deprecation notice
            torch.jit.save(module, buffer, _extra_files=extra)
        _atomic_write_bytes(out, buffer.getvalue())
    return out


def export_folder(folder: str, fmt: str, out: str, height: int | None = None, width: int | None = None,
                  metric: bool = False, dynamic_size: bool = False) -> tuple[str, ExportMetadata]:
    """Export a weights folder (ours or released) at ``height`` x ``width`` (default: the
    trained size) -> (written path, metadata)."""
    graph, metadata = graph_from_folder(folder, metric)
    metadata = ExportMetadata(**{**asdict(metadata), "height": int(height or metadata.height),
                                 "width": int(width or metadata.width), "dynamic_size": dynamic_size})
    return export_graph(graph, metadata, out, fmt), metadata


def run_export(options) -> str:
    """``depth-hints-export``: export ``--load_weights_folder`` as ``--format`` to ``--out``;
    prints what was written. ``options``: ExportOptions."""
    out, metadata = export_folder(options.load_weights_folder, options.format, options.out,
                                  options.height, options.width, options.metric, options.dynamic_size)
    size = "dynamic size (multiples of 32)" if metadata.dynamic_size else f"{metadata.width}x{metadata.height}"
    print(f"-> Wrote {out}: {options.format}, ResNet{metadata.num_layers}, {size}, dynamic batch, "
          f"outputs {', '.join(metadata.outputs)}, metric factor {metadata.metric_scale_factor:g}")
    return out


def main(argv=None) -> int:
    """Console entry ``depth-hints-export``; 0 on success, 2 on a project error (one line)."""
    from depth_hints.errors import run_entry_point
    from depth_hints.options import parse_export

    def run() -> int:
        run_export(parse_export(argv))
        return 0
    return run_entry_point(run, "depth-hints-export")


def load_torchscript(path: str, device=None) -> tuple[torch.jit.ScriptModule, ExportMetadata]:
    """An exported TorchScript file -> (module in eval mode, its metadata)."""
    _check_file(path)
    extra = {TORCHSCRIPT_METADATA_FILE: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit's deprecation notice
            module = torch.jit.load(path, map_location=device, _extra_files=extra)
    except Exception as e:
        raise ModelFileError(f"{path} is not a TorchScript model ({type(e).__name__}: {e}).") from None
    try:
        strings = json.loads(extra[TORCHSCRIPT_METADATA_FILE] or "{}")
    except ValueError:
        strings = {}
    return module.eval(), ExportMetadata.from_strings(strings, path)


def _check_file(path: str) -> None:
    if not os.path.isfile(path):
        raise ModelFileError(f"Model file {path} does not exist.")
