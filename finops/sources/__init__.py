"""Parsers of outside formats into usage records: JSONL files (gzip too), OTLP GenAI spans (JSON and
protobuf), LiteLLM logs, and the providers' usage and cost report APIs."""
