"""The first lines of a child process in which torch and transformers cannot be imported: the device side of edgekd
(bench and gate of a bundle; the text and LM tokenizers, generation, perplexity) must run on a machine that has
neither. CLI_WITHOUT_TORCH runs `edgekd ARGS...` that way: `python -c CLI_WITHOUT_TORCH ARGS...`."""
BLOCK_TORCH = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "transformers"):
            raise ImportError(name + " is blocked in this test: the device path must not import it")
sys.meta_path.insert(0, Block())
"""
CLI_WITHOUT_TORCH = BLOCK_TORCH + """
from edgekd.cli import main
main(sys.argv[1:])
"""
