//! Errors as text a user can act on: an error and its causes, `: `-separated. Client libraries
//! (hyper's "client error", say) put what went wrong in the causes, not in the error itself.

/// `error` and each of its causes, `: `-separated.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
