"""The first lines of a child process in which torch and transformers cannot be imported: the device side of
edgekd.lm (tokenizer, generation, perplexity) must run on a machine that has neither."""
BLOCK_TORCH = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "transformers"):
            raise ImportError(name + " is blocked in this test")
sys.meta_path.insert(0, Block())
"""
