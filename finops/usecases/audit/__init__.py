"""The token audit's builders: prompt fingerprints and token counts, cost per outcome, the digest's
lines and the monthly report as data. Their renderers live in :mod:`finops.render`."""
