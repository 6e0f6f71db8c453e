//! The `ratelimit` plugin's integration tests, one binary: dialogues through the testkit, the
//! buckets shared across cores, and the Redis backend against a real server.

mod cores;
mod redis;
mod support;
mod transcripts;
