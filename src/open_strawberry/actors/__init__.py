"""The built-in actors, one module each."""

from open_strawberry.actors.arbiter import Arbiter, ArbiterPolicy, extract_final_answer
from open_strawberry.actors.generator import Generator
from open_strawberry.actors.grader import GraderActor
from open_strawberry.actors.prompter import Prompter
from open_strawberry.actors.sink import JsonlSink
from open_strawberry.actors.verifier import Verifier, parse_critique

__all__ = [
    "Arbiter",
    "ArbiterPolicy",
    "Generator",
    "GraderActor",
    "JsonlSink",
    "Prompter",
    "Verifier",
    "extract_final_answer",
    "parse_critique",
]
