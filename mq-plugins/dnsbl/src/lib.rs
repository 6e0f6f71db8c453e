//! The `dnsbl` plugin (being written).
