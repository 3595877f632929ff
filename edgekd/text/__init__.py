"""Text classifiers (issue 15): a Debian package-description corpus, a WordPiece tokenizer, BERT-style teacher
and DistilBERT-recipe students, their losses and an ONNX export check.

Self-contained on purpose: it imports only edgekd.core (errors, fileio) and the distillation losses (edgekd.train.distill), so it
can move under the new package layout (issue 17) without touching the rest. The pipeline plugs it in through
edgekd/pipeline/task.py (TextClassification) and edgekd/tasks/text.py (its steps in stages 1-4).
The corpus, the loader and the tokenizer are torch-free: the device bench tokenizes raw text with them.
"""
