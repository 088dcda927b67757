"""An optional narrative of the analysis from an OpenAI-compatible chat-completions API, called
only when the operator configures one (VISIONFN_ANALYSIS_LLM_URL and _MODEL, and _KEY if it
needs one). Any failure leaves the computed summary as the answer; the key is never logged,
returned or sent anywhere but that URL."""

from __future__ import annotations

import json
import logging
from typing import Any

import requests

from shared.defects.analysis import Analysis
from shared.defects.settings import DefectSettings

log = logging.getLogger("visionfn.defects.narrative")

#: The model is asked for this much text at most, and a longer answer is cut here.
MAX_TOKENS, MAX_NARRATIVE_CHARS = 600, 4000
#: A larger answer body is not read.
MAX_RESPONSE_BYTES = 1024 * 1024
SYSTEM_PROMPT = (
    "You are a quality engineer in a steel mill. You are given statistics of recent automatic surface-defect "
    "inspections (classes: crazing, inclusion, patches, pitted_surface, rolled-in_scale, scratches) as JSON. "
    "Write a short analysis for the shift report: what stands out, the trend, the outliers worth a look, and one or "
    "two concrete recommendations. Use only the figures given; at most 150 words; plain text."
)


def chat_completions_url(base: str) -> str:
    base = base.rstrip("/")
    return base if base.endswith("/chat/completions") else f"{base}/chat/completions"


def with_narrative(analysis: Analysis, settings: DefectSettings) -> Analysis:
    """``analysis`` with the configured model's narrative, or as it is (with the reason in
    ``narrative_error`` when a configured model failed)."""
    if not settings.analysis_llm_url or not settings.analysis_llm_model or analysis.records == 0:
        return analysis
    try:
        text = _ask(analysis, settings)
    except (requests.RequestException, ValueError, KeyError, IndexError, TypeError) as error:
        reason = _reason(error)
        log.warning("analysis narrative unavailable (%s); answering with the computed summary", reason)
        return analysis.model_copy(
            update={"narrative_error": f"The language model gave no narrative ({reason}); the computed summary stands."}
        )
    return analysis.model_copy(update={"narrative": text, "narrative_source": "llm"})


def _ask(analysis: Analysis, settings: DefectSettings) -> str:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if settings.analysis_llm_key is not None:
        headers["Authorization"] = f"Bearer {settings.analysis_llm_key.get_secret_value()}"
    figures = analysis.model_dump(exclude={"narrative", "narrative_source", "narrative_error"})
    body: dict[str, Any] = {
        "model": settings.analysis_llm_model,
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": json.dumps(figures, ensure_ascii=False)},
        ],
        "max_tokens": MAX_TOKENS,
        "temperature": 0.2,
    }
    with requests.post(
        chat_completions_url(settings.analysis_llm_url or ""),
        json=body,
        headers=headers,
        timeout=settings.analysis_llm_timeout,
        allow_redirects=False,
        stream=True,
    ) as response:
        if response.status_code != 200:
            raise ValueError(f"HTTP {response.status_code}")
        content = response.raw.read(MAX_RESPONSE_BYTES + 1, decode_content=True)
    if len(content) > MAX_RESPONSE_BYTES:
        raise ValueError(f"an answer over {MAX_RESPONSE_BYTES} bytes")
    text = json.loads(content)["choices"][0]["message"]["content"]
    if not isinstance(text, str) or not text.strip():
        raise ValueError("an empty answer")
    return text.strip()[:MAX_NARRATIVE_CHARS]


def _reason(error: Exception) -> str:
    """What went wrong, without the URL (it may carry credentials) or anything the request sent."""
    if isinstance(error, requests.Timeout):
        return "no answer in time"
    if isinstance(error, requests.ConnectionError):
        return "could not connect"
    if isinstance(error, requests.RequestException):
        return type(error).__name__
    if isinstance(error, ValueError) and str(error).startswith(("HTTP ", "an ")):
        return str(error)
    return "an answer that is not a chat completion"
