"""Class: model files unpickled (code execution by replacing a checkpoint), and a bad model file breaking the
server.

Checkpoints hold tensors and plain values only and are read with ``torch.load(weights_only=True)``; the
report LM is read from safetensors only. A scan of the project's code keeps it that way. A model file that
does not load leaves the previous model serving.
"""

from __future__ import annotations

import ast
import os
import pickle
import time
from pathlib import Path

import pytest
import torch

from models.checkpoint import CheckpointError, load_checkpoint

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
CODE_DIRS = ("models", "monailabel_app", "slicer_extension", "benchmarks", "scripts")


class _Exploit:
    """Unpickling this object runs ``open(marker, 'w')``: what a crafted model file would do."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def crafted_checkpoint(path: Path, marker: Path) -> Path:
    torch.save({"format": "gazelabel.checkpoint/1", "kind": "classifier", "config": {}, "state_dict": {},
                "payload": _Exploit(marker)}, path)
    return path


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
            yield owner, name, node


def test_no_code_path_unpickles():
    """torch.load only with weights_only=True; no pickle/dill/joblib/jit loads, no np.load with pickles,
    no from_pretrained without use_safetensors=True (its .bin fallback unpickles)."""
    problems = []
    files = [p for d in CODE_DIRS for p in (REPO / d).rglob("*.py")]
    assert len(files) > 50
    for path in files:
        tree = ast.parse(path.read_text(), filename=str(path))
        for owner, name, node in _calls(tree):
            kw = {k.arg: k.value for k in node.keywords}
            where = f"{path.relative_to(REPO)}:{node.lineno}"
            if name == "load" and owner == "torch":
                value = kw.get("weights_only")
                if not (isinstance(value, ast.Constant) and value.value is True):
                    problems.append(f"{where}: torch.load without weights_only=True")
            elif owner in ("pickle", "dill", "joblib", "cloudpickle", "marshal") and name in ("load", "loads"):
                problems.append(f"{where}: {owner}.{name}")
            elif owner == "jit" and name == "load":
                problems.append(f"{where}: torch.jit.load")
            elif name == "load" and owner == "np" and isinstance(kw.get("allow_pickle"), ast.Constant) and kw["allow_pickle"].value:
                problems.append(f"{where}: np.load(allow_pickle=True)")
            elif name == "load" and owner == "yaml" and "Loader" not in kw:
                problems.append(f"{where}: yaml.load without a safe Loader")
            elif name == "from_pretrained" and owner in ("AutoModelForCausalLM", "AutoModel", "GPT2LMHeadModel"):
                value = kw.get("use_safetensors")
                if not (isinstance(value, ast.Constant) and value.value is True):
                    problems.append(f"{where}: {owner}.from_pretrained without use_safetensors=True")
    assert not problems, "\n".join(problems)


def test_a_crafted_checkpoint_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    path = crafted_checkpoint(tmp_path / "classifier.pt", marker)
    with pytest.raises(CheckpointError, match="only tensors and plain values"):
        load_checkpoint(path, "classifier")
    assert not marker.exists()
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "nope.pt", "classifier")
    (tmp_path / "garbage.pt").write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "garbage.pt", "classifier")
    (tmp_path / "pickled.pt").write_bytes(pickle.dumps(_Exploit(marker)))
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "pickled.pt", "classifier")
    assert not marker.exists()


def test_the_trained_checkpoints_load_with_weights_only(tiny_models):
    _, models = tiny_models
    for name, kind in (("classifier.pt", "classifier"), ("scanpath.pt", "scanpath"), ("report/report.pt", "report")):
        ckpt = torch.load(models / name, map_location="cpu", weights_only=True)
        assert ckpt["kind"] == kind


@pytest.mark.parametrize("replacement", ["crafted", "garbage", "other_kind"])
def test_a_replaced_model_file_keeps_the_previous_model_serving(start_server, tmp_path, replacement):
    server = start_server()
    image_id = server.image_ids[0]
    before = server.post(f"/infer/gaze_classifier?image={image_id}&output=json")
    assert before.status_code == 200, before.text
    marker = tmp_path / "pwned"
    new = tmp_path / "new.pt"
    if replacement == "crafted":
        crafted_checkpoint(new, marker)
    elif replacement == "garbage":
        new.write_bytes(b"\x80\x02not a model" * 100)
    else:
        new.write_bytes((server.models_dir / "scanpath.pt").read_bytes())
    time.sleep(0.01)
    os.replace(new, server.models_dir / "classifier.pt")  # what a publish would look like
    for _ in range(2):
        after = server.post(f"/infer/gaze_classifier?image={image_id}&output=json")
        assert after.status_code == 200, after.text
        assert after.json()["models"] == before.json()["models"]
        assert after.json()["case"]["scores"] == before.json()["case"]["scores"]
    pipeline = server.post(f"/infer/pipeline?image={image_id}&output=json")
    assert pipeline.status_code == 200, pipeline.text
    assert not marker.exists()
    assert "does not load" in server.log_tail(400)
