import pytest
import yaml


def tiny_distill_config(**distill):
    """Digits, 300 training images, two small teachers, a tiny student: seconds per stage."""
    return {
        "name": "tiny", "seed": 0,
        "data": {"source": "digits", "train_limit": 300},
        "teachers": [{"arch": "convnet", "width": 8, "train": {"epochs": 3, "lr": 0.1, "batch_size": 16, "amp": "off"}},
                     {"arch": "resnet", "width": 8, "train": {"epochs": 3, "lr": 0.1, "batch_size": 16, "amp": "off"}}],
        "student": {"arch": "convnet", "width": 8},
        "distill": {"temperature": 4.0, "alpha": 0.9, **distill,
                    "train": {"epochs": 2, "lr": 0.1, "batch_size": 16, "amp": "off"}},
    }


@pytest.fixture
def distill_config(tmp_path):
    def write(**distill):
        cfg = tiny_distill_config(cache_dir=str(tmp_path / "cache"), **distill)
        path = tmp_path / "tiny.yaml"
        path.write_text(yaml.safe_dump(cfg))
        return path
    return write


@pytest.fixture(scope="module")
def trained_teachers(tmp_path_factory):
    """A run folder whose teachers stage is done; tests copy it and run only the distill stage."""
    from edgekd.pipeline.config import validate_config
    from edgekd.pipeline.runner import run_pipeline

    folder = tmp_path_factory.mktemp("teachers")
    run_pipeline(validate_config(tiny_distill_config()), folder / "tiny.yaml", folder / "run", only=["teachers"], log=lambda _m: None)
    return folder / "run"
