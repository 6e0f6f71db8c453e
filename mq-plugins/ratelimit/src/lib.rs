//! The `ratelimit` plugin (being written).
