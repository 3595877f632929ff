"""Device targets: profiles (data in targets/*.yaml) and one backend module per runtime, imported lazily."""
from edgekd.runtimes.profiles import TargetProfile, list_profiles, load_profile
from edgekd.runtimes.registry import get_backend

__all__ = ["TargetProfile", "get_backend", "list_profiles", "load_profile"]
