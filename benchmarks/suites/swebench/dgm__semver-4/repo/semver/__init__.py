from semver.version import Version, compare, parse

__all__ = ["Version", "compare", "parse"]
