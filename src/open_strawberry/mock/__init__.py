"""The mock LLM server: wire-compatible with OpenAI and Anthropic, scripted, paced."""

from open_strawberry.mock.reasoner import Reasoner
from open_strawberry.mock.server import FaultRates, MockConfig, MockServer, open_mock_server, serve_mock

__all__ = ["FaultRates", "MockConfig", "MockServer", "Reasoner", "open_mock_server", "serve_mock"]
