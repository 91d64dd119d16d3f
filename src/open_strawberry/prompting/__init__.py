"""What the pipeline says to models: the words (:mod:`~open_strawberry.prompting.prompts`) and the
strategies that choose them turn by turn (:mod:`~open_strawberry.prompting.strategies`)."""

from open_strawberry.prompting.strategies import NudgeStrategy, PromptStrategy, VerifyStrategy, create_strategy

__all__ = ["NudgeStrategy", "PromptStrategy", "VerifyStrategy", "create_strategy"]
