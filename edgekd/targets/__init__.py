"""Device targets: profiles (data in targets/*.yaml) and one backend module per runtime, imported lazily."""
from .profiles import TargetProfile, list_profiles, load_profile
from .registry import get_backend

__all__ = ["TargetProfile", "get_backend", "list_profiles", "load_profile"]
