"""The torch-free parts of the text and language-model tasks: tokenizers, the Debian corpus reader, the generation
loop, its speed measurement and perplexity. They import numpy, `tokenizers` and edgekd.core/runtimes only, never
torch, so device/ (which runs on the board) stands on them below train/, text/ and lm/ (the training side)."""
