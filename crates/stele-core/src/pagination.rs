//! Keyset pagination shared by every list endpoint: WorkOS's `limit`, `before`, `after`
//! and `order` parameters, and the `list_metadata` cursors of the response.
//!
//! Lists are ordered by a key that never changes for an item (an id, a sequence number),
//! so a cursor stays valid and a page never repeats or skips items while new ones arrive.

pub const DEFAULT_LIMIT: u32 = 10;
pub const MAX_LIMIT: u32 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortOrder {
    Asc,
    /// Newest first; also what WorkOS's `normal` means.
    #[default]
    Desc,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor<K> {
    /// Items that come before this key in the list order.
    Before(K),
    /// Items that come after this key in the list order.
    After(K),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest<K> {
    pub limit: u32,
    pub order: SortOrder,
    pub cursor: Option<Cursor<K>>,
}

impl<K> Default for PageRequest<K> {
    fn default() -> Self {
        Self {
            limit: DEFAULT_LIMIT,
            order: SortOrder::Desc,
            cursor: None,
        }
    }
}

/// How a store should scan for one page: in which direction, from which exclusive bound,
/// and how many rows (one more than the limit, to learn whether more exist).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan<'a, K> {
    pub descending: bool,
    /// `Some((key, true))` means keys greater than `key`; `false` means less than.
    pub bound: Option<(&'a K, bool)>,
    pub fetch: u32,
}

impl<K> PageRequest<K> {
    pub fn scan(&self) -> Scan<'_, K> {
        let list_descending = self.order == SortOrder::Desc;
        // Paging backwards (`before`) scans against the list order, then flips the rows.
        let (descending, bound) = match &self.cursor {
            None => (list_descending, None),
            Some(Cursor::After(key)) => (list_descending, Some((key, !list_descending))),
            Some(Cursor::Before(key)) => (!list_descending, Some((key, list_descending))),
        };
        Scan {
            descending,
            bound,
            fetch: self.limit + 1,
        }
    }

    /// Turns the rows a [`Scan`] returned into a page in list order with its cursors.
    pub fn assemble<T>(&self, mut rows: Vec<T>, cursor_of: impl Fn(&T) -> String) -> Page<T> {
        let has_more = rows.len() > self.limit as usize;
        rows.truncate(self.limit as usize);
        let backwards = matches!(self.cursor, Some(Cursor::Before(_)));
        if backwards {
            rows.reverse();
        }
        let first = rows.first().map(&cursor_of);
        let last = rows.last().map(&cursor_of);
        let (before, after) = match self.cursor {
            None => (None, if has_more { last } else { None }),
            Some(Cursor::After(_)) => (first, if has_more { last } else { None }),
            Some(Cursor::Before(_)) => (if has_more { first } else { None }, last),
        };
        Page {
            data: rows,
            before,
            after,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub before: Option<String>,
    pub after: Option<String>,
}

impl<T> Page<T> {
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            data: self.data.into_iter().map(f).collect(),
            before: self.before,
            after: self.after,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Simulates a store over keys 1..=n.
    fn page(n: i64, request: &PageRequest<i64>) -> Page<i64> {
        let scan = request.scan();
        let mut keys: Vec<i64> = (1..=n)
            .filter(|k| match scan.bound {
                None => true,
                Some((bound, true)) => k > bound,
                Some((bound, false)) => k < bound,
            })
            .collect();
        if scan.descending {
            keys.reverse();
        }
        keys.truncate(scan.fetch as usize);
        request.assemble(keys, |k| k.to_string())
    }

    #[test]
    fn walks_forward_and_back_in_descending_order() {
        let first = page(
            5,
            &PageRequest {
                limit: 2,
                ..Default::default()
            },
        );
        assert_eq!(
            (
                first.data.clone(),
                first.before.clone(),
                first.after.clone()
            ),
            (vec![5, 4], None, Some("4".into()))
        );
        let second = page(
            5,
            &PageRequest {
                limit: 2,
                cursor: Some(Cursor::After(4)),
                ..Default::default()
            },
        );
        assert_eq!(second.data, [3, 2]);
        let third = page(
            5,
            &PageRequest {
                limit: 2,
                cursor: Some(Cursor::After(2)),
                ..Default::default()
            },
        );
        assert_eq!((third.data, third.after), (vec![1], None));
        let back = page(
            5,
            &PageRequest {
                limit: 2,
                cursor: Some(Cursor::Before(3)),
                ..Default::default()
            },
        );
        assert_eq!((back.data, back.before), (vec![5, 4], None));
    }

    #[test]
    fn ascending_order_reverses_the_walk() {
        let request = PageRequest {
            limit: 3,
            order: SortOrder::Asc,
            cursor: Some(Cursor::After(1)),
        };
        let result = page(5, &request);
        assert_eq!(
            (result.data, result.after),
            (vec![2, 3, 4], Some("4".into()))
        );
    }
}
