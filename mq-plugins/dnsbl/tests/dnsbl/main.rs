//! The `dnsbl` plugin through the testkit, against a DNS server on loopback: one binary, one
//! module per area.

mod support;

mod lookups;
mod transcripts;
