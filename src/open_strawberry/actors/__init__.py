"""The built-in actors, one module each."""

from open_strawberry.actors.generator import Generator
from open_strawberry.actors.sink import JsonlSink

__all__ = ["Generator", "JsonlSink"]
