//! `Extensions`: typed values that layers attach to a request for later layers and handlers.

use std::any::{Any, TypeId};
use std::fmt;

/// A small map from a type to one value of that type, carried by a [`Request`](crate::Request).
///
/// Layers use it to hand what they learned to the handler: an authenticated user, a request id,
/// a parsed session. One value per type; define a newtype to keep values apart.
///
/// # Examples
///
/// ```
/// use steadyloop::Request;
///
/// #[derive(Debug, PartialEq)]
/// struct User(String);
///
/// let mut req = Request::builder().uri("/").build();
/// req.extensions_mut().insert(User("ada".into()));
/// assert_eq!(req.extensions().get::<User>(), Some(&User("ada".into())));
/// ```
#[derive(Default)]
pub struct Extensions {
    /// The values, at most one per type; few enough that a scan beats hashing.
    entries: Vec<(TypeId, Box<dyn Any + Send + Sync>)>,
}

impl Extensions {
    /// Creates an empty map.
    pub fn new() -> Extensions {
        Extensions::default()
    }

    /// Stores `value`, returning the value of the same type it replaces.
    pub fn insert<T: Send + Sync + 'static>(&mut self, value: T) -> Option<T> {
        let previous = self.remove::<T>();
        self.entries.push((TypeId::of::<T>(), Box::new(value)));
        previous
    }

    /// Returns the value of type `T`, if one is stored.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.entries
            .iter()
            .find(|(id, _)| *id == TypeId::of::<T>())
            .and_then(|(_, value)| value.downcast_ref())
    }

    /// Returns the value of type `T` for changing, if one is stored.
    pub fn get_mut<T: Send + Sync + 'static>(&mut self) -> Option<&mut T> {
        self.entries
            .iter_mut()
            .find(|(id, _)| *id == TypeId::of::<T>())
            .and_then(|(_, value)| value.downcast_mut())
    }

    /// Removes and returns the value of type `T`, if one is stored.
    pub fn remove<T: Send + Sync + 'static>(&mut self) -> Option<T> {
        let at = self
            .entries
            .iter()
            .position(|(id, _)| *id == TypeId::of::<T>())?;
        let (_, value) = self.entries.swap_remove(at);
        value.downcast().ok().map(|boxed| *boxed)
    }

    /// Returns the number of values stored.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Returns `true` if nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl fmt::Debug for Extensions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Extensions")
            .field("len", &self.entries.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_value_per_type() {
        let mut ext = Extensions::new();
        assert_eq!(ext.insert(1u32), None);
        assert_eq!(ext.insert(2u32), Some(1));
        ext.insert("text");
        assert_eq!(ext.get::<u32>(), Some(&2));
        *ext.get_mut::<u32>().unwrap() += 1;
        assert_eq!(ext.remove::<u32>(), Some(3));
        assert_eq!(ext.get::<u32>(), None);
        assert_eq!(ext.len(), 1);
    }
}
