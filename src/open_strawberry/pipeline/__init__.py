"""The ``generate`` job: the product's main run, as a function of a :class:`GenerateConfig`.

- :mod:`~open_strawberry.pipeline.config`: every option, and the TOML file;
- :mod:`~open_strawberry.pipeline.standard`: the standard graph of actors;
- :mod:`~open_strawberry.pipeline.preflight`: what every runner (``generate``, the Ray driver)
  does to its traces file: the lock, resume, ``--retry-failed``, the manifest, the pairs to make;
- :mod:`~open_strawberry.pipeline.run`: :func:`generate` (checks, the backends, the run);
- :mod:`~open_strawberry.pipeline.summary`: progress while it runs and the summary at the end.
"""

from open_strawberry.pipeline.config import GenerateConfig, load_config
from open_strawberry.pipeline.run import check_reachable, generate
from open_strawberry.pipeline.standard import standard_pipeline
from open_strawberry.pipeline.summary import Progress, RunSummary

__all__ = ["GenerateConfig", "Progress", "RunSummary", "check_reachable", "generate", "load_config",
           "standard_pipeline"]
