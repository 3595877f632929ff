"""Tables (data.source csv or parquet): the student with its preprocessing in one ONNX graph, and the teachers'
ensemble as ONNX for the baseline (edgekd/tasks/tabular.py runs them)."""
