"""Pipeline stages, one module each. A stage reads earlier artifacts and writes its own folder."""
