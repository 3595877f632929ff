"""`torchrun --nproc-per-node 2 -m edgekd run CONFIG` on CPU (gloo): DDP teachers and student, rank 0 writes."""
import json
import os
import subprocess
import sys

import pytest
import yaml

from .conftest import tiny_distill_config

pytestmark = pytest.mark.slow


def test_two_cpu_processes_train_a_working_student(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_distill_config(cache_dir=str(tmp_path / "cache"))))
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "edgekd", "run", str(config), "--out", str(out),
               "--only", "teachers", "--only", "distill", "--only", "export"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    distill = manifest["stages"]["distill"]
    assert distill["status"] == "done" and distill["metrics"]["world_size"] == 2
    assert distill["metrics"]["test_top1"] > 0.2  # chance is 0.1
    assert manifest["stages"]["export"]["status"] == "done"  # rank 0 alone, after the DDP stages
    assert (out / "02-distill" / "student.pt").is_file()
    assert not list(out.rglob(".*.tmp"))
    # Both ranks ran the same DDP job: the teachers' training sharded the data, so each saw half per epoch.
    teacher = manifest["stages"]["teachers"]["metrics"]["teachers"][0]
    assert teacher["epochs"] == 3 and teacher["images_per_second"] > 0
