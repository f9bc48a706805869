"""Depth Hints (Watson et al., ICCV 2019) on monodepth2 semantics.

The checkout's ``datasets`` and ``networks`` are top-level packages (monodepth2's layout), and
Hugging Face's ``datasets`` is installed in most ML environments. Importing this package puts
the checkout first on ``sys.path`` so that ours are the ones imported from every entry point
(console scripts, ``python train.py``, ``python -m pytest``, pytest from another directory).

``from depth_hints import DepthPredictor`` is resolved lazily, so importing a light module
(e.g. ``depth_hints.errors``) does not import torch.
"""
import os as _os
import sys as _sys

__all__ = ["DepthPredictor", "DepthPrediction"]

_ROOT = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))


def _put_checkout_first() -> None:
    if _os.path.isdir(_os.path.join(_ROOT, "datasets")) and _sys.path[:1] != [_ROOT]:
        _sys.path[:] = [_ROOT] + [p for p in _sys.path if p != _ROOT]
    for name in ("datasets", "networks"):
        module = _sys.modules.get(name)
        where = _os.path.abspath(getattr(module, "__file__", None) or "")
        if module is not None and not where.startswith(_os.path.join(_ROOT, name) + _os.sep):
            raise ImportError(f"another {name!r} package ({where or module!r}) was imported before "
                              f"depth_hints; import depth_hints first, or run from {_ROOT}.")


_put_checkout_first()


def __getattr__(name: str):
    if name in __all__:
        from depth_hints import predictor
        return getattr(predictor, name)
    raise AttributeError(f"module 'depth_hints' has no attribute {name!r}")
