"""The language-model path through the pipeline (issue 16): `task: language-model` in a pipeline file.

Same stages, same run folder and manifest as images; the task (pipeline/task.py LanguageModel) does every stage's work
its own way, in its steps (edgekd/tasks/lm_train.py, lm_ship.py), which the seven stages hand the run to. What those
steps share with nothing else of the pipeline is here: the config, records, layout, data and distillation steps.
The models, losses, export and generation are edgekd.lm's.
"""
