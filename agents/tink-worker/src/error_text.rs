//! Error messages for people: the transport crates' top-level messages ("error sending
//! request", "transport error") say little without their causes.

/// "outer: inner: innermost".
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut current = error.source();
    while let Some(err) = current {
        text.push_str(": ");
        text.push_str(&err.to_string());
        current = err.source();
    }
    text
}
