"""Fast math answer checking for RL rewards and evaluation.

``verify``/``check``/``verify_batch`` decide whether the final answer of a model response equals
a gold answer, by mathematics (fractions, radicals, intervals, sets, matrices, units...).
``compute_score`` and ``reward_fn`` wrap them in the reward-function signatures of verl and of
TRL's ``GRPOTrainer``. Options are the fields of the checker's ``CheckerOptions``:
``tolerance``, ``precision``, ``rounded_min_sig_digits``, ``last_number_fallback``,
``boxed_only``, ``choices``, ``work_limit``.
"""

from typing import Any, Dict, List, Optional, Sequence, Union

from ._native import check, default_options, verify, verify_batch

__all__ = [
    "verify",
    "check",
    "verify_batch",
    "compute_score",
    "reward_fn",
    "default_options",
]


def compute_score(
    data_source: Any,
    solution_str: str,
    ground_truth: Union[str, Sequence[str]],
    extra_info: Optional[Dict[str, Any]] = None,
    **options: Any,
) -> float:
    """verl's reward-function signature: 1.0 when ``solution_str`` answers ``ground_truth``,
    else 0.0. A list of ground truths accepts any of them. ``data_source`` and ``extra_info``
    are accepted and ignored (one checker serves every math data source)."""
    if not isinstance(solution_str, str):
        raise TypeError("solution_str must be a string")
    golds = [ground_truth] if isinstance(ground_truth, str) else list(ground_truth)
    return 1.0 if any(verify(solution_str, str(g), **options) for g in golds) else 0.0


def _text(completion: Any) -> str:
    """A completion as text: a string, or chat messages whose last assistant turn is used."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return str(completion.get("content", ""))
    if isinstance(completion, (list, tuple)):
        for message in reversed(completion):
            if isinstance(message, dict) and message.get("role", "assistant") == "assistant":
                return str(message.get("content", ""))
        return ""
    raise TypeError(
        f"a completion must be a string or a list of chat messages, not {type(completion).__name__}"
    )


def reward_fn(
    completions: Sequence[Any],
    solution: Union[str, Sequence[str]],
    **kwargs: Any,
) -> List[float]:
    """TRL ``GRPOTrainer`` reward signature: one reward (1.0 or 0.0) per completion.

    ``completions`` are strings or chat-message lists (``[{"role": "assistant", "content":
    ...}]``); ``solution`` is the dataset column of gold answers (one per completion, or one
    string for all). TRL passes every other dataset column as a keyword; those are ignored,
    except checker options given as ``checker_options={...}``."""
    options = kwargs.get("checker_options") or {}
    texts = [_text(c) for c in completions]
    golds = solution if isinstance(solution, str) else [str(s) for s in solution]
    return [1.0 if ok else 0.0 for ok in verify_batch(texts, golds, **options)]
