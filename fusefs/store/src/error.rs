//! What can go wrong talking to a store, in the terms the filesystem answers with.

/// An error of a store call (after the client's retries).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such object.
    #[error("{0}: no such object")]
    NotFound(String),
    /// The object is no longer the version it was opened as (its ETag changed).
    #[error("{0}: the object changed while it was read")]
    Changed(String),
    /// The credentials were refused, or do not allow the call.
    #[error("{0}")]
    Denied(String),
    /// A name the store cannot hold (an empty, `.` or `..` segment, a control character).
    #[error("{0}")]
    BadName(String),
    /// The store did not answer in time, or kept failing, through every retry.
    #[error("{0}")]
    Unavailable(String),
    /// The mount source or a setting is wrong.
    #[error("{0}")]
    Config(String),
    /// Anything else the store answered.
    #[error("{0}")]
    Other(String),
}

impl StoreError {
    /// The errno a filesystem request answers with: never a partial or stale answer, so
    /// whatever did not come back whole is EIO.
    pub fn errno(&self) -> i32 {
        match self {
            StoreError::NotFound(_) => libc::ENOENT,
            StoreError::Changed(_) | StoreError::Unavailable(_) | StoreError::Other(_) => libc::EIO,
            StoreError::Denied(_) => libc::EACCES,
            StoreError::BadName(_) | StoreError::Config(_) => libc::EINVAL,
        }
    }

    /// Classify an `object_store` error.
    pub(crate) fn from_object_store(what: &str, e: object_store::Error) -> Self {
        use object_store::Error as E;
        match e {
            E::NotFound { .. } => StoreError::NotFound(what.to_string()),
            E::Precondition { .. } => StoreError::Changed(what.to_string()),
            E::PermissionDenied { .. } | E::Unauthenticated { .. } => {
                StoreError::Denied(format!("{what}: {e}"))
            }
            E::InvalidPath { .. } => StoreError::BadName(format!("{what}: {e}")),
            other => {
                let msg = format!("{what}: {other}");
                // The client gives up on a call only after its retries: what it could not
                // reach in time is unavailable, anything else is the store's answer.
                if msg.contains("retries") || msg.contains("timed out") || msg.contains("connect") {
                    StoreError::Unavailable(msg)
                } else {
                    StoreError::Other(msg)
                }
            }
        }
    }
}
