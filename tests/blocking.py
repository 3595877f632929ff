"""The first lines of a child process in which torch and transformers cannot be imported: the device side of edgekd
(bench and gate of a bundle; the text and LM tokenizers, generation, perplexity) must run on a machine that has
neither. CLI_WITHOUT_TORCH runs `edgekd ARGS...` that way: `python -c CLI_WITHOUT_TORCH ARGS...`."""
# The finder answers like a machine without the package would, to libraries that only look (NNCF probes
# importlib.util.find_spec("torch") and takes a spec without an origin for "absent"), and fails any real import
# with a message naming the test.
BLOCK_TORCH = """
import sys
from importlib.machinery import ModuleSpec
class Refuse:
    def create_module(self, spec):
        raise ImportError(spec.name + " is blocked in this test: the device path must not import it")
    def exec_module(self, module):
        pass
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "transformers"):
            return ModuleSpec(name, Refuse(), origin=None)
sys.meta_path.insert(0, Block())
"""
CLI_WITHOUT_TORCH = BLOCK_TORCH + """
from edgekd.cli import main
main(sys.argv[1:])
"""
