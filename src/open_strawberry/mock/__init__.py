"""The mock LLM server: wire-compatible with OpenAI and Anthropic, scripted, paced."""

from open_strawberry.mock.config import MockConfig, ReplyLengths
from open_strawberry.mock.faults import FaultRates
from open_strawberry.mock.reasoner import Reasoner
from open_strawberry.mock.server import MockServer, open_mock_server, serve_mock

__all__ = ["FaultRates", "MockConfig", "MockServer", "Reasoner", "ReplyLengths", "open_mock_server", "serve_mock"]
