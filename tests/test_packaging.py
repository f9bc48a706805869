"""Our top-level ``datasets`` and ``networks`` packages win over other packages of those names
(Hugging Face's ``datasets`` is in most ML environments) from every kind of entry point."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def decoy_env(tmp_path_factory):
    """An environment whose PYTHONPATH puts decoy ``datasets`` and ``networks`` packages (which
    fail loudly when imported) ahead of the checkout, and a working directory outside it."""
    tmp = tmp_path_factory.mktemp("decoy")
    for name in ("datasets", "networks"):
        os.makedirs(tmp / "site" / name)
        (tmp / "site" / name / "__init__.py").write_text(f"raise ImportError('the decoy {name} was imported')\n")
    os.makedirs(tmp / "elsewhere")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp / "site"), ROOT]))
    return env, str(tmp / "elsewhere")


def _run(args, decoy_env, timeout=300):
    env, cwd = decoy_env
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_console_script_entry_imports_our_packages(decoy_env):
    """What a console script does: import the entry module's main, then the code it runs."""
    code = ("from train import main; import depth_hints.trainer, datasets, networks; "
            "print(datasets.__file__); print(networks.__file__)")
    result = _run(["-c", code], decoy_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [os.path.join(ROOT, "datasets", "__init__.py"),
                                     os.path.join(ROOT, "networks", "__init__.py")]


def test_python_train_py_imports_our_datasets(decoy_env, tmp_path):
    """`python train.py`: reaching the split check proves our datasets module was imported."""
    result = _run([os.path.join(ROOT, "train.py"), "--data_path", str(tmp_path), "--split", "no_such_split",
                   "--frame_ids", "0", "--use_stereo", "--weights_init", "scratch", "--num_workers", "0"],
                  decoy_env)
    assert "decoy" not in result.stderr and "Traceback" not in result.stderr
    assert result.returncode == 2 and "no_such_split" in result.stderr


def test_pytest_from_another_directory_imports_our_datasets(decoy_env):
    test = os.path.join(ROOT, "tests", "test_datasets.py") + "::test_every_dataset_choice_has_a_loader"
    result = _run(["-m", "pytest", "-q", "-p", "no:cacheprovider", test], decoy_env)
    assert result.returncode == 0, result.stdout[-2000:]
    assert "1 passed" in result.stdout
