"""Is the answer right? The ``scorer`` config group: a function ``(prediction, truth, settings) -> bool | None``.

The prediction is the generated (or replayed) text, reduced to what is inside its last ``<answer>…</answer>`` when
``scorer.extract`` (the whole text when it has no such tag); the truth is the sample's ``scorer.key`` field, reduced
the same way. ``None`` means "cannot tell" (no ground truth, or nothing the scorer can read in it). Model-free.
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable
from typing import Any

from attnviz.errors import AttnvizError
from attnviz.regions import DEFAULT_REGEX, parse_points
from attnviz.schema import ScorerConfig

ANSWER = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.S)
NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
CHOICE = re.compile(r"(?<![A-Za-z])\(?([A-E])\)?(?![A-Za-z])")  # a capital option letter standing alone
Scorer = Callable[[str, str, ScorerConfig], "bool | None"]


def extract_answer(text: str) -> str:
    """What is inside the last ``<answer>…</answer>`` (an unclosed one runs to the end); else the whole text."""
    found = ANSWER.findall(text)
    return (found[-1] if found else text).strip()


def normalise(text: str) -> str:
    """Case, spaces and a trailing period do not make an answer wrong."""
    return " ".join(text.lower().split()).strip().rstrip(".").strip()


def exact(prediction: str, truth: str, settings: ScorerConfig) -> bool | None:
    return normalise(prediction) == normalise(truth)


def _number(text: str) -> float | None:
    match = NUMBER.search(text.replace(",", ""))
    return float(match.group()) if match else None


def numeric(prediction: str, truth: str, settings: ScorerConfig) -> bool | None:
    want = _number(truth)
    if want is None:
        return None
    got = _number(prediction)
    return got is not None and math.isclose(got, want, rel_tol=0.0, abs_tol=settings.tolerance * max(1.0, abs(want)))


def _choice(text: str) -> str | None:
    text = text.strip()
    if len(text.rstrip(".)").lstrip("(")) == 1:  # a lone letter, any case: "b", "(c)"
        text = text.upper()
    match = CHOICE.search(text)
    return match.group(1) if match else None


def choice(prediction: str, truth: str, settings: ScorerConfig) -> bool | None:
    want = _choice(truth)
    return None if want is None else _choice(prediction) == want


def points(prediction: str, truth: str, settings: ScorerConfig) -> bool | None:
    pattern = settings.regex or DEFAULT_REGEX
    want, got = parse_points(truth, pattern), parse_points(prediction, pattern)
    if not want:
        return None
    if len(got) != len(want):
        return False
    return all(g.image == w.image and math.dist((g.x, g.y), (w.x, w.y)) <= settings.distance
               for g, w in zip(got, want, strict=True))


def resolve(target: str) -> Scorer:
    """``scorer._target_`` ("package.module.function") -> the function; a one-line error when it is not one."""
    module_name, _, name = target.rpartition(".")
    try:
        function = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError) as err:
        raise AttnvizError(f"scorer._target_={target!r} is not an importable function ({err})") from None
    if not callable(function):
        raise AttnvizError(f"scorer._target_={target!r} is not callable")
    return function


def score(generated: str, sample: dict[str, Any], settings: ScorerConfig) -> bool | None:
    """True / False / None (no ground truth in the sample, or the scorer cannot tell)."""
    truth = sample.get(settings.key) if settings.key else None
    if truth is None or (isinstance(truth, str) and not truth.strip()):
        return None
    truth_text = str(truth)
    prediction = extract_answer(generated) if settings.extract else generated
    wanted = extract_answer(truth_text) if settings.extract else truth_text
    verdict = resolve(settings._target_)(prediction, wanted, settings)
    return None if verdict is None else bool(verdict)
