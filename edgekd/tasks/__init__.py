"""What each kind of model does its own way inside the seven stages: one module per task, holding its TaskSteps
(pipeline/stage.py), which the task in pipeline/task.py names in its `steps` and the stage of the same name hands
the run to. Above pipeline/ (these import its context, records and shared helpers); the pipeline names them by
dotted path only, so no module of pipeline/ imports one (tests/test_import_contracts.py).

- tabular.py: tables (data.source csv or parquet), stages 1-4.
- lm_train.py, lm_ship.py: language models (task: language-model), all seven stages.
- text.py: text classifiers (data.source text), stages 1-4; with distill.mode none stages 1-2 ship the given folder.
"""
