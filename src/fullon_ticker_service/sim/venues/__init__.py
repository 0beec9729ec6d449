"""One module per simulated exchange protocol; each exposes `VENUE_CLASS`."""
