"""Reports of a bench: the JSON with its schema, markdown, terminal tables, HTML with plots, comparisons."""
