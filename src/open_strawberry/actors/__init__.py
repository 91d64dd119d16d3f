"""The built-in actors, one module each."""

from open_strawberry.actors.sink import JsonlSink

__all__ = ["JsonlSink"]
