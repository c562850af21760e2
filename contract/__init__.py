"""The wire contract: topic names and specs, and the formats of the messages on them."""
