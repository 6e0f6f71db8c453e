//! The `aliases` plugin through the testkit: expansions as SMTP transcripts, the limits, the
//! reload of a changed map file, and start-up with a bad one. One binary, one module per area.

mod expansions;
mod limits;
mod reload;
mod startup;
mod support;
