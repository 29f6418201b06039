"""Presenters: use-case results for people and machines (tables, JSON, CSV, Markdown, HTML, inline
SVG charts, Slack summaries). Pure functions of results; no queries, no I/O."""
