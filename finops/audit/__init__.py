"""The token audit: prompt fingerprints and token counts, cost per outcome, the monthly report."""
