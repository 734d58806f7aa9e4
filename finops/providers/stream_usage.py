"""Step: make OpenAI chat streams report their usage (DESIGN.md §2).

Chat Completions streams carry usage only with ``stream_options={"include_usage": true}``
(one extra final chunk with ``choices: []``). This step asks for it when the caller did not,
and tells the transport to hide that chunk from the caller, whose iteration is unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping

from finops.pipeline.call import Call, Served
from finops.pipeline.step import Step

__all__ = ["StreamUsageStep"]


class StreamUsageStep(Step):
    """Inject ``stream_options.include_usage`` into chat streams (and strip that chunk)."""

    name = "stream_usage"

    def before(self, call: Call) -> Served | None:
        """Ask for the usage chunk on chat streams that do not request it."""
        if call.endpoint != "chat.completions" or not call.stream:
            return None
        options = call.kwargs.get("stream_options")
        options = dict(options) if isinstance(options, Mapping) else {}
        if options.get("include_usage") is not True:
            options["include_usage"] = True
            call.kwargs = {**call.kwargs, "stream_options": options}
            call.strip_usage_chunk = True
        return None
