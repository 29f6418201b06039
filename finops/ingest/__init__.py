"""Sources of usage: JSONL files and directories (gzip too). HTTP, OTLP and provider APIs come later."""
