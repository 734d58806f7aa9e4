"""SDK clients pointed at a local :class:`~finops.devserver.DevServer` (demo, tests, benches).

The OpenAI, Anthropic and Gemini SDKs take a ``base_url`` and need no helper; boto3 wants an
endpoint, a region and credentials, so the one recipe lives here.
"""

from __future__ import annotations

from typing import Any

__all__ = ["bedrock_client"]


def bedrock_client(url: str, *, region: str = "us-east-1", **config: Any) -> Any:
    """A real boto3 ``bedrock-runtime`` client for the DevServer at ``url`` (dummy credentials).

    Extra keyword arguments go to ``boto3.client`` (e.g. ``config=botocore.config.Config(...)``).
    Needs ``pip install 'finops[bedrock]'``.
    """
    import boto3

    return boto3.client(
        "bedrock-runtime",
        endpoint_url=url,
        region_name=region,
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="devserver",
        **config,
    )
