//! The recent requests the emulator answered (method, path, status), so a
//! test can say what a real client called. Bounded: a benchmark's millions
//! of requests keep only the last [`CAPACITY`].

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use super::RequestRecord;

/// How many records are kept; the oldest go first.
pub(crate) const CAPACITY: usize = 4096;

/// A bounded, ordered record of answered requests.
#[derive(Default)]
pub(crate) struct RequestLog {
    records: Mutex<VecDeque<RequestRecord>>,
}

impl RequestLog {
    /// Appends one record, dropping the oldest when full.
    pub(crate) fn push(&self, record: RequestRecord) {
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        if records.len() == CAPACITY {
            records.pop_front();
        }
        records.push_back(record);
    }

    /// The records, oldest first.
    pub(crate) fn snapshot(&self) -> Vec<RequestRecord> {
        self.records.lock().unwrap_or_else(PoisonError::into_inner).iter().cloned().collect()
    }

    /// Forgets every record.
    pub(crate) fn clear(&self) {
        self.records.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }
}
