//! The `webhook` plugin (being written).
