//! Side-by-side line diff of two pretty-printed definitions, for the version history.
//! Definitions are small, so a plain longest-common-subsequence table is enough.

/// How a row of the side-by-side view differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKind {
    Same,
    Removed,
    Added,
    /// A removed line shown beside the added line that replaced it.
    Changed,
}

impl RowKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RowKind::Same => "same",
            RowKind::Removed => "removed",
            RowKind::Added => "added",
            RowKind::Changed => "changed",
        }
    }
}

/// One row: the left (older) line and the right (newer) line, each with its number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub kind: RowKind,
    pub left: Option<(usize, String)>,
    pub right: Option<(usize, String)>,
}

/// Beyond this many lines per side the table would be large; compare as wholly replaced.
const MAX_LINES: usize = 2_000;

pub fn side_by_side(old: &str, new: &str) -> Vec<Row> {
    let left: Vec<&str> = old.lines().collect();
    let right: Vec<&str> = new.lines().collect();
    let (n, m) = (left.len(), right.len());
    let mut ops: Vec<(RowKind, Option<usize>, Option<usize>)> = Vec::new();
    if n > MAX_LINES || m > MAX_LINES {
        ops.extend((0..n).map(|i| (RowKind::Removed, Some(i), None)));
        ops.extend((0..m).map(|j| (RowKind::Added, None, Some(j))));
    } else {
        // lcs[i][j]: length of the longest common subsequence of left[i..] and right[j..].
        let mut lcs = vec![vec![0u32; m + 1]; n + 1];
        for i in (0..n).rev() {
            for j in (0..m).rev() {
                lcs[i][j] = if left[i] == right[j] {
                    lcs[i + 1][j + 1] + 1
                } else {
                    lcs[i + 1][j].max(lcs[i][j + 1])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < n || j < m {
            if i < n && j < m && left[i] == right[j] {
                ops.push((RowKind::Same, Some(i), Some(j)));
                i += 1;
                j += 1;
            } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
                ops.push((RowKind::Added, None, Some(j)));
                j += 1;
            } else {
                ops.push((RowKind::Removed, Some(i), None));
                i += 1;
            }
        }
    }
    pair_up(ops, &left, &right)
}

/// Turns runs of removals followed by additions into side-by-side "changed" rows.
fn pair_up(
    ops: Vec<(RowKind, Option<usize>, Option<usize>)>,
    left: &[&str],
    right: &[&str],
) -> Vec<Row> {
    let line = |lines: &[&str], index: Option<usize>| {
        index.map(|i| (i + 1, lines.get(i).copied().unwrap_or_default().to_owned()))
    };
    let mut rows = Vec::new();
    let mut index = 0;
    while index < ops.len() {
        if ops[index].0 == RowKind::Same {
            rows.push(Row {
                kind: RowKind::Same,
                left: line(left, ops[index].1),
                right: line(right, ops[index].2),
            });
            index += 1;
            continue;
        }
        let start = index;
        while index < ops.len() && ops[index].0 != RowKind::Same {
            index += 1;
        }
        let removed: Vec<usize> = ops[start..index].iter().filter_map(|op| op.1).collect();
        let added: Vec<usize> = ops[start..index].iter().filter_map(|op| op.2).collect();
        for k in 0..removed.len().max(added.len()) {
            let (old, new) = (removed.get(k).copied(), added.get(k).copied());
            let kind = match (old, new) {
                (Some(_), Some(_)) => RowKind::Changed,
                (Some(_), None) => RowKind::Removed,
                _ => RowKind::Added,
            };
            rows.push(Row {
                kind,
                left: line(left, old),
                right: line(right, new),
            });
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_text_is_all_same_rows() {
        let rows = side_by_side("a\nb", "a\nb");
        assert!(rows.iter().all(|row| row.kind == RowKind::Same));
        assert_eq!(rows.len(), 2);
    }

    #[test]
    fn replaced_and_inserted_lines_line_up() {
        let rows = side_by_side("a\nb\nc", "a\nB\nc\nd");
        let kinds: Vec<RowKind> = rows.iter().map(|row| row.kind).collect();
        assert_eq!(
            kinds,
            [
                RowKind::Same,
                RowKind::Changed,
                RowKind::Same,
                RowKind::Added
            ]
        );
        assert_eq!(rows[1].left, Some((2, "b".to_owned())));
        assert_eq!(rows[1].right, Some((2, "B".to_owned())));
        assert_eq!(rows[3].right, Some((4, "d".to_owned())));
    }
}
