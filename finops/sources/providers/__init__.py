"""Provider usage APIs (OpenAI organization usage/costs, Anthropic Admin usage/cost reports).

Parsers and request builders are pure (:mod:`.openai_usage`, :mod:`.anthropic_usage`); the one
module that talks HTTP is :mod:`.client`. Polling, cursors and storage live in
:mod:`finops.usecases.pollers` and :mod:`finops.storage.provider_reports`.
"""

from finops.sources.providers.client import ProviderClient, RetryPolicy
from finops.sources.providers.rows import Bucket, CostRow, Page, UsageRow

__all__ = ["Bucket", "CostRow", "Page", "ProviderClient", "RetryPolicy", "UsageRow"]
