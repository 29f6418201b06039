"""The pure core: usage records, prices, costs. No I/O, no clock, no environment."""
