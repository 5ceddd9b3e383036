//! Watches: patterns that observe every byte a stream receives, without
//! consuming any, and act each time they match.

use crate::pattern::{Found, Pattern};
use crate::search::Scan;

/// The handle of a watch set with `Child::fail_on`
/// or `Child::respond`; give it to
/// `Child::unwatch` to remove the watch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WatchId(u64);

/// What a watch does when it matches.
#[derive(Debug)]
pub enum Action {
    /// The next read or expect returns `Error::FailOn`.
    FailOn,
    /// These bytes are sent to the child.
    Respond(Vec<u8>),
}

#[derive(Debug)]
pub struct Watch {
    pub id: WatchId,
    pub pattern: Pattern,
    pub action: Action,
    /// One search per output stream, from where the watch began or its
    /// last match ended.
    pub scans: [Scan; 2],
}

/// The watches of one conversation.
#[derive(Debug, Default)]
pub struct Watches {
    list: Vec<Watch>,
    next: u64,
}

impl Watches {
    /// Adds a watch whose search of stream `s` begins at `origins[s]`.
    pub fn add(&mut self, pattern: Pattern, action: Action, origins: [u64; 2]) -> WatchId {
        self.next += 1;
        let id = WatchId(self.next);
        let scans = origins.map(|origin| Scan::new(&pattern, origin));
        self.list.push(Watch {
            id,
            pattern,
            action,
            scans,
        });
        id
    }

    pub fn remove(&mut self, id: WatchId) {
        self.list.retain(|w| w.id != id);
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Watch> {
        self.list.iter_mut()
    }

    /// The earliest stream position of stream `s` that some watch may
    /// still need to look back at.
    pub fn needs_from(&self, s: usize) -> Option<u64> {
        self.list.iter().map(|w| w.scans[s].needs_from()).min()
    }
}

impl Watch {
    /// After a match: the next occurrence starts where this one ended (one
    /// byte later after an empty match, so each position matches once).
    pub fn advance(&mut self, s: usize, found: &Found) {
        let next = if found.end > found.start {
            found.through
        } else {
            found.through + 1
        };
        self.scans[s].restart(&self.pattern, next);
    }
}
