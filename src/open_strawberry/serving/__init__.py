"""Model servers the package starts and stops itself (for tests, benchmarks and bootstrap
rounds): llama.cpp's ``llama-server`` and llama-cpp-python's server, on 127.0.0.1.

The package never serves a model with its own code: these start an existing engine as a child
process, wait until it answers, and stop it on every way out. They are async context managers
(``async with open_llama_server(...) as server``).
"""

from open_strawberry.serving.llamacpp import (
    THINKING_CHATML,
    LocalServer,
    find_llama_server,
    open_llama_cpp_python_server,
    open_llama_server,
    server_props,
    smollm2_gguf,
    thinking_arguments,
)

__all__ = [
    "THINKING_CHATML",
    "LocalServer",
    "find_llama_server",
    "open_llama_cpp_python_server",
    "open_llama_server",
    "server_props",
    "smollm2_gguf",
    "thinking_arguments",
]
