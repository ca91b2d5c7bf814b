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

    /// Classify an `object_store` error, in one readable line: the S3 error code and HTTP
    /// status rather than the XML body, the endpoint and the cause when it was not reached.
    pub(crate) fn from_object_store(what: &str, e: object_store::Error) -> Self {
        use object_store::Error as E;
        match e {
            E::NotFound { .. } => StoreError::NotFound(what.to_string()),
            E::Precondition { .. } => StoreError::Changed(what.to_string()),
            E::PermissionDenied { .. } | E::Unauthenticated { .. } => {
                StoreError::Denied(format!("{what}: {}", Answer::of(&e).line()))
            }
            E::InvalidPath { .. } => StoreError::BadName(format!("{what}: {e}")),
            other => {
                let a = Answer::of(&other);
                let line = format!("{what}: {}", a.line());
                if a.denied() {
                    StoreError::Denied(line)
                } else if a.code.is_none() && a.status.is_none() {
                    // The client gives up only after its retries: no answer at all is
                    // the store being unavailable.
                    StoreError::Unavailable(line)
                } else {
                    StoreError::Other(line)
                }
            }
        }
    }
}

/// What a failed call got back, picked out of `object_store`'s message (which carries the
/// whole XML body of the answer).
#[derive(Debug, Default, PartialEq)]
struct Answer {
    /// The S3 error code (`NoSuchBucket`, `SignatureDoesNotMatch`, ...).
    code: Option<String>,
    /// The HTTP status (`404 Not Found`).
    status: Option<String>,
    /// `scheme://host:port` of the request.
    endpoint: Option<String>,
    /// `after N retries`, when the client retried.
    retries: Option<String>,
    /// The innermost cause (`Connection refused`, `operation timed out`).
    cause: String,
}

impl Answer {
    fn of(e: &object_store::Error) -> Answer {
        let text = e.to_string();
        let between = |open: &str, close: &str| {
            let i = text.find(open)? + open.len();
            let j = text[i..].find(close)? + i;
            Some(text[i..j].trim().to_string()).filter(|s| !s.is_empty())
        };
        let mut cause: &dyn std::error::Error = e;
        while let Some(next) = cause.source() {
            cause = next;
        }
        let endpoint = ["GET ", "HEAD ", "PUT ", "POST ", "DELETE "]
            .iter()
            .find_map(|m| between(&format!("performing {m}"), " "))
            .map(|url| match url.find("://") {
                Some(i) => {
                    let host_end = url[i + 3..].find('/').map_or(url.len(), |j| i + 3 + j);
                    url[..host_end].to_string()
                }
                None => url,
            });
        Answer {
            code: between("<Code>", "</Code>"),
            status: between("status code: ", ":"),
            endpoint,
            retries: text.match_indices("after ").find_map(|(i, m)| {
                let rest = &text[i + m.len()..];
                let r = &rest[..rest.find(',')?];
                r.ends_with("retries").then(|| format!("after {r}"))
            }),
            cause: cause.to_string(),
        }
    }

    /// Whether the store refused who we are (rather than what we asked).
    fn denied(&self) -> bool {
        const CREDENTIALS: [&str; 6] = [
            "AccessDenied",
            "InvalidAccessKeyId",
            "SignatureDoesNotMatch",
            "ExpiredToken",
            "InvalidToken",
            "AuthorizationHeaderMalformed",
        ];
        self.status.as_deref().is_some_and(|s| s.starts_with("403"))
            || self
                .code
                .as_deref()
                .is_some_and(|c| CREDENTIALS.contains(&c))
    }

    fn line(&self) -> String {
        match (&self.code, &self.status) {
            (Some(code), status) if self.denied() => format!(
                "the store refused the credentials: {code}{}",
                status
                    .as_ref()
                    .map(|s| format!(" ({s})"))
                    .unwrap_or_default()
            ),
            (Some(code), Some(status)) => format!("the store answered {code} ({status})"),
            (Some(code), None) => format!("the store answered {code}"),
            (None, Some(status)) => format!("the store answered {status}"),
            (None, None) => format!(
                "no answer from {}{}: {}",
                self.endpoint.as_deref().unwrap_or("the store"),
                self.retries
                    .as_ref()
                    .map(|r| format!(" {r}"))
                    .unwrap_or_default(),
                self.cause
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generic(msg: &str) -> object_store::Error {
        object_store::Error::Generic {
            store: "S3",
            source: msg.into(),
        }
    }

    #[test]
    fn an_s3_error_is_its_code_and_status_not_its_xml() {
        let e = generic(
            "Error performing list request: Error performing GET \
             http://127.0.0.1:7480/nope?list-type=2 in 2.9ms - Server returned non-2xx status \
             code: 404 Not Found: <?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code>\
             <BucketName>nope</BucketName></Error>",
        );
        let e = StoreError::from_object_store("listing s3://nope/", e);
        assert!(matches!(e, StoreError::Other(_)), "{e:?}");
        assert_eq!(
            e.to_string(),
            "listing s3://nope/: the store answered NoSuchBucket (404 Not Found)"
        );
    }

    #[test]
    fn refused_credentials_are_denied() {
        let e = generic(
            "Error performing GET http://h:1/demo in 6ms - Server returned non-2xx status \
             code: 403 Forbidden: <Error><Code>SignatureDoesNotMatch</Code></Error>",
        );
        let e = StoreError::from_object_store("listing s3://demo/", e);
        assert_eq!(e.errno(), libc::EACCES);
        assert_eq!(
            e.to_string(),
            "listing s3://demo/: the store refused the credentials: SignatureDoesNotMatch \
             (403 Forbidden)"
        );
    }

    #[test]
    fn no_answer_names_the_endpoint_the_retries_and_the_cause() {
        let e = generic(
            "Error performing list request: Error performing GET http://127.0.0.1:9/demo?x=2 \
             in 1.98s, after 16 retries, max_retries: 16, retry_timeout: 10s  - HTTP error: \
             error sending request",
        );
        let e = StoreError::from_object_store("listing s3://demo/", e);
        assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
        assert_eq!(e.errno(), libc::EIO);
        let line = e.to_string();
        assert!(
            line.starts_with(
                "listing s3://demo/: no answer from http://127.0.0.1:9 after 16 retries: "
            ),
            "{line}"
        );
    }
}
