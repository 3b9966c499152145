//! Size, count and time limits of the socket server: what a peer may send, hold
//! open or make the agent wait for.

use std::time::Duration;

/// Size, count and time limits of the socket server.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections served at once; more are closed at accept.
    pub max_connections: usize,
    /// Connections of other users served at once (each only gets its 403), apart from
    /// `max_connections`, so another user cannot take every slot.
    pub max_foreign_connections: usize,
    /// Largest request body accepted.
    pub max_body: usize,
    /// Largest request line plus headers.
    pub max_header_bytes: usize,
    /// Time a client has to send a request's headers (also bounds idle connections).
    pub header_timeout: Duration,
    /// Time a client has to send a request's body.
    pub body_timeout: Duration,
    /// Time an answer may wait for the client to read it; a client that stopped
    /// reading is disconnected rather than holding its connection for ever.
    pub write_timeout: Duration,
    /// Requests served on one connection before it is closed.
    pub max_requests_per_connection: u32,
    /// How long open connections get to finish at shutdown.
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 4096,
            max_foreign_connections: 16,
            max_body: 64 * 1024,
            max_header_bytes: 16 * 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            max_requests_per_connection: 100_000,
            drain_timeout: Duration::from_secs(1),
        }
    }
}
