"""Only here to ship the top-level targets/ and calibration/ folders inside the wheel.

They live at the repository's top level so users see them as data; in a wheel they become
edgekd/_builtin/{targets,calibration}/ (see edgekd/core/resources.py). All metadata is in pyproject.toml.
"""
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithBuiltinData(build_py):
    def run(self):
        super().run()
        for kind in ("targets", "calibration"):
            destination = Path(self.build_lib) / "edgekd" / "_builtin" / kind
            destination.mkdir(parents=True, exist_ok=True)
            for source in sorted(Path(kind).glob("*.yaml")):
                self.copy_file(str(source), str(destination / source.name))


setup(cmdclass={"build_py": BuildWithBuiltinData})
