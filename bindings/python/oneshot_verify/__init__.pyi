from typing import Any, Dict, List, Optional, Sequence, TypedDict, Union

class CheckResult(TypedDict):
    correct: bool
    extracted: Optional[str]
    gold_extracted: Optional[str]

class Options(TypedDict, total=False):
    tolerance: float
    precision: Optional[int]
    rounded_min_sig_digits: int
    last_number_fallback: bool
    boxed_only: bool
    choices: List[str]
    work_limit: int

def verify(
    prediction: str,
    gold: str,
    *,
    tolerance: float = ...,
    precision: Optional[int] = ...,
    rounded_min_sig_digits: int = ...,
    last_number_fallback: bool = ...,
    boxed_only: bool = ...,
    choices: Sequence[str] = ...,
    work_limit: int = ...,
) -> bool: ...
def check(
    prediction: str,
    gold: str,
    *,
    tolerance: float = ...,
    precision: Optional[int] = ...,
    rounded_min_sig_digits: int = ...,
    last_number_fallback: bool = ...,
    boxed_only: bool = ...,
    choices: Sequence[str] = ...,
    work_limit: int = ...,
) -> CheckResult: ...
def verify_batch(
    predictions: Sequence[str],
    golds: Union[str, Sequence[str]],
    *,
    tolerance: float = ...,
    precision: Optional[int] = ...,
    rounded_min_sig_digits: int = ...,
    last_number_fallback: bool = ...,
    boxed_only: bool = ...,
    choices: Sequence[str] = ...,
    work_limit: int = ...,
) -> List[bool]: ...
def default_options() -> Options: ...
def compute_score(
    data_source: Any,
    solution_str: str,
    ground_truth: Union[str, Sequence[str]],
    extra_info: Optional[Dict[str, Any]] = None,
    **options: Any,
) -> float: ...
def reward_fn(
    completions: Sequence[Union[str, Sequence[Dict[str, Any]]]],
    solution: Union[str, Sequence[str]],
    **kwargs: Any,
) -> List[float]: ...
