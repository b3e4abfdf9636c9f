"""One ComponentResource per tier, and the pure renderers beside them."""
