"""One module per kind of model (a task): its Task class (pipeline/task.py lists what a task answers: how its data is
read and split, its input and output spec, its metric and score, the report's reference rows) and the TaskSteps of the
stages it does its own way, which the stage of the same name hands the run to. pipeline/task.py TASKS names each task
by dotted path and the task names its steps the same way, so no module of pipeline/ imports one; these modules build
on the pipeline's context, records and shared helpers (tests/test_import_contracts.py).

- image.py: image classification, every stage generic.
- fidelity.py: an ONNX model of any outputs shipped as given, judged by a task metric; every stage generic.
- text.py: text classifiers (data.source text), stages 1-4; with distill.mode none stages 1-2 ship the given folder.
- tabular.py: tables (data.source csv or parquet), stages 1-4.
- lm.py: language models (task: language-model), all seven stages (lm_train.py: 1-2, lm_ship.py: 3-7).
"""
