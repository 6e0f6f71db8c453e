//! Chain dispatch benchmarks (filled in below).
fn main() {}
