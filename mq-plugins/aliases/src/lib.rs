//! The `aliases` plugin (being written).
