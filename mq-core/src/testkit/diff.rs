//! A line diff for transcripts: what a plugin call changed in its event.

/// The lines of `after` that are not in `before` (`+`) and those of `before` gone from `after`
/// (`-`), in order, by longest common subsequence. Events describe themselves in a few dozen
/// lines, so the quadratic table is small.
pub(crate) fn diff(before: &[String], after: &[String]) -> Vec<String> {
    let (n, m) = (before.len(), after.len());
    // common[i][j]: length of the longest common subsequence of before[i..] and after[j..].
    let mut common = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            common[i][j] = if before[i] == after[j] {
                common[i + 1][j + 1] + 1
            } else {
                common[i + 1][j].max(common[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < n || j < m {
        if i < n && j < m && before[i] == after[j] {
            i += 1;
            j += 1;
        } else if i < n && (j == m || common[i + 1][j] >= common[i][j + 1]) {
            out.push(format!("- {}", before[i]));
            i += 1;
        } else {
            out.push(format!("+ {}", after[j]));
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::diff;

    fn lines(text: &str) -> Vec<String> {
        text.split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn shows_additions_and_removals_in_order() {
        assert_eq!(
            diff(&lines("a b c"), &lines("x a c d")),
            ["+ x", "- b", "+ d"]
        );
        assert!(diff(&lines("a b"), &lines("a b")).is_empty());
        assert_eq!(diff(&[], &lines("a")), ["+ a"]);
        assert_eq!(diff(&lines("a"), &[]), ["- a"]);
    }
}
