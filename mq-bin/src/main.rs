//! `mq`, the mail transfer agent, with the plugins of the enabled cargo features.

use std::process::ExitCode;

fn main() -> ExitCode {
    mq_bin::main()
}
