"""The staged pipeline: the config composed of section models, the runner, the run's layout and
manifest, and one class per stage in stages/."""
