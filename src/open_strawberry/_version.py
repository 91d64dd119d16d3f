from importlib.metadata import PackageNotFoundError, version

# The name on PyPI: "open-strawberry" there is an unrelated project. The command, the import name and
# the name in manifests stay open-strawberry / open_strawberry.
DISTRIBUTION = "open-strawberry-traces"

try:
    __version__ = version(DISTRIBUTION)
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"
