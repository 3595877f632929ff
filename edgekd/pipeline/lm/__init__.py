"""The language-model path through the pipeline (issue 16): `task: language-model` in a pipeline file.

Same stages, same run folder and manifest as images; each stage is a class here (stages_train.py, stages_ship.py)
that the registry picks for this task. The models, losses, export and generation are edgekd.lm's.
"""
