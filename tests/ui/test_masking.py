"""Keys a server echoed into a reply reach no page: what the UI sends is masked at its two edges
(JSON answers and server-sent events), as the records are."""

from __future__ import annotations

from open_strawberry.redact import register_secret
from open_strawberry.ui.server import _json
from open_strawberry.ui.sse import sse_message

KEY = "sk-ui-echo-0123456789abcdefXYZ"


def test_an_echoed_key_is_masked_in_events_and_json_answers() -> None:
    register_secret(KEY)
    event = sse_message("turn_end", {"text": f"your key is {KEY}", "reasoning": KEY})
    answer = _json({"messages": [{"role": "assistant", "content": f"echo: {KEY}"}]})
    assert KEY.encode() not in event and b"your key is" in event
    assert answer.body is not None and KEY.encode() not in answer.body and b"echo: " in answer.body
