"""Event-store adapters: transcoding, recorders with a submission register, infrastructure wiring."""
