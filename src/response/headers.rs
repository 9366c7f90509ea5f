//! [`HeaderList`]: a response's header fields, in a list whose room is reused.
//!
//! Every response has a few headers, so every response allocated their `Vec` and the writer
//! freed it after the head went out: malloc and free, about 130 instructions per request. A
//! dropped list's room is kept for the next response made on the thread instead: the loop
//! builds a response, writes it and drops it before it builds the next one, so one spare
//! list per thread serves the usual run of requests (a stack of 32 cost more to keep than it
//! saved).

use std::cell::Cell;
use std::fmt;
use std::ops::{Deref, DerefMut};

use super::{HeaderName, HeaderText};

/// The room a new list gets: the usual few (type, vary, request id) without growing.
const ROOM: usize = 4;

/// One header field: its name and value.
pub(crate) type Field = (HeaderName, HeaderText);

thread_local! {
    /// An empty list of `ROOM` fields, ready for the next response made on this thread.
    static SPARE: Cell<Option<Vec<Field>>> = const { Cell::new(None) };
}

/// A response's header fields, in the order they were added; reads and changes as a `Vec`.
pub(crate) struct HeaderList {
    /// The fields.
    fields: Vec<Field>,
}

impl HeaderList {
    /// Creates an empty list, reusing the room of one dropped on this thread if there is one.
    pub(crate) fn new() -> HeaderList {
        let spare = SPARE.try_with(Cell::take).ok().flatten();
        HeaderList {
            fields: spare.unwrap_or_else(|| Vec::with_capacity(ROOM)),
        }
    }
}

impl Drop for HeaderList {
    fn drop(&mut self) {
        // Only the usual size is kept: a list that grew stays as large as it got.
        if self.fields.capacity() != ROOM {
            return;
        }
        self.fields.clear();
        let fields = std::mem::take(&mut self.fields);
        // During thread exit the spare may be gone; the room is then simply freed (as is a
        // spare already there).
        let _ = SPARE.try_with(|spare| spare.replace(Some(fields)));
    }
}

impl Deref for HeaderList {
    type Target = Vec<Field>;

    fn deref(&self) -> &Vec<Field> {
        &self.fields
    }
}

impl DerefMut for HeaderList {
    fn deref_mut(&mut self) -> &mut Vec<Field> {
        &mut self.fields
    }
}

impl<'a> IntoIterator for &'a HeaderList {
    type Item = &'a Field;
    type IntoIter = std::slice::Iter<'a, Field>;

    fn into_iter(self) -> Self::IntoIter {
        self.fields.iter()
    }
}

impl IntoIterator for HeaderList {
    type Item = Field;
    type IntoIter = std::vec::IntoIter<Field>;

    fn into_iter(mut self) -> Self::IntoIter {
        std::mem::take(&mut self.fields).into_iter()
    }
}

impl fmt::Debug for HeaderList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.fields, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_list_is_reused_empty_and_a_grown_one_is_not() {
        let mut list = HeaderList::new();
        list.push(("A".into(), "1".into()));
        let room = list.as_ptr();
        drop(list);
        let reused = HeaderList::new();
        assert_eq!(reused.as_ptr(), room);
        assert!(reused.is_empty());
        assert_eq!(reused.capacity(), ROOM);

        let mut grown = HeaderList::new();
        for i in 0..ROOM + 1 {
            grown.push(("X".into(), HeaderText::copy_of(&i.to_string())));
        }
        drop(grown);
        let next = HeaderList::new();
        assert_eq!(next.capacity(), ROOM);
        let fields: Vec<Field> = next.into_iter().collect();
        assert!(fields.is_empty());
    }
}
