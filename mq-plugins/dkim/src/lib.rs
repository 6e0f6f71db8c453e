//! The `dkim` plugin (being written).
