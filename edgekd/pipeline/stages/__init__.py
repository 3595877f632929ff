"""Pipeline stages, one module each, listed once in registry.py. A stage reads earlier artifacts and writes its own folder."""
