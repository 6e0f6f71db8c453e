//! The Redis reply parser, reached by the fuzz targets in `fuzz/` (feature `fuzzing`, which
//! only the fuzz crate turns on): thin wrappers over the code the plugin runs.

use crate::resp::{self, Value};

/// A Redis reply, as the plugin parses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply(Value);

impl Reply {
    /// The reply Redis gives to a command echoed back: an array of bulk strings.
    pub fn bulk_array(items: &[&[u8]]) -> Reply {
        Reply(Value::Array(
            items
                .iter()
                .map(|item| Value::Bulk(item.to_vec()))
                .collect(),
        ))
    }
}

/// The first reply in `buf` and the bytes it took, `None` if it has not all arrived.
///
/// # Errors
///
/// Why the bytes are not a reply, as text.
pub fn parse(buf: &[u8]) -> Result<Option<(Reply, usize)>, String> {
    resp::parse(buf)
        .map(|parsed| parsed.map(|(value, used)| (Reply(value), used)))
        .map_err(|error| error.to_string())
}

/// The bytes of the command `args`, as the plugin sends it.
pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    resp::encode(args, &mut out);
    out
}
