"""Install depth-hints: `pip install -e .[dev]` (see README.md)."""
from setuptools import find_packages, setup

EXPORT_REQUIRES = ["onnx>=1.14", "onnxruntime>=1.16"]

setup(
    name="depth-hints",
    version="0.1.0",
    description="Self-supervised monocular depth from stereo with Depth Hints (ICCV 2019), "
                "reimplemented: fast fused-SGM hints, tested, runs on CPU and CUDA.",
    long_description=open("README.md").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["depth_hints", "depth_hints.*", "networks", "networks.*",
                                    "datasets", "datasets.*"]),
    py_modules=["train", "evaluate_depth", "precompute_depth_hints", "test_simple", "evaluate_pose"],
    install_requires=[
        "torch>=2.1",
        "torchvision>=0.16",
        "numpy>=1.22",
        "opencv-python-headless>=4.5",
        "pillow>=9.0",
        "scikit-image>=0.19",
        "tensorboardX>=2.5",
        "matplotlib>=3.5",
        "tqdm>=4.60",
    ],
    extras_require={
        # depth-hints-export / DepthPredictor.from_onnx (the legacy exporter needs no onnxscript)
        "export": EXPORT_REQUIRES,
        "dev": ["pytest>=7.3"] + EXPORT_REQUIRES,
    },
    entry_points={
        "console_scripts": [
            "depth-hints-train=train:main",
            "depth-hints-evaluate=evaluate_depth:main",
            "depth-hints-precompute=precompute_depth_hints:main",
            "depth-hints-test-simple=test_simple:main",
            "depth-hints-evaluate-pose=evaluate_pose:main",
            "depth-hints-export=depth_hints.export:main",
            "depth-hints-models=depth_hints.released_models:main",
        ]
    },
)
