//! `serve`'s log lines, with what nodes and clients sent escaped (issue 15 §2: everything
//! shown in logs is escaped). Node-supplied text reaches log lines through many fields and
//! messages (a refused MAC, an error quoting a report); escaping each at its call site would
//! miss the next one, so the writer escapes the whole formatted line once: a value cannot end
//! the line, forge the next one, or move an operator's terminal.
//!
//! This is sound because the formatter writes no control characters of its own: the
//! provisioner builds tracing-subscriber without its `ansi` feature, so the only control
//! character a line holds by right is its final newline.

use std::io::{self, Write};

use tracing_subscriber::fmt::MakeWriter;

use crate::store::text::shown;

/// Makes one [`EscapedLine`] per log event, over `inner` (stderr in `serve`).
#[derive(Debug, Clone)]
pub struct Escaped<M>(pub M);

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Escaped<M> {
    type Writer = EscapedLine<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        EscapedLine {
            inner: self.0.make_writer(),
            line: Vec::new(),
        }
    }
}

/// One event's line, collected and written escaped, in one write, when the formatter is done
/// with it (dropped).
#[derive(Debug)]
pub struct EscapedLine<W: Write> {
    inner: W,
    line: Vec<u8>,
}

impl<W: Write> Write for EscapedLine<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.line.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Drop for EscapedLine<W> {
    fn drop(&mut self) {
        if self.line.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.line);
        let body = text.strip_suffix('\n').unwrap_or(&text);
        let line = format!("{}\n", shown(body, &[]));
        // A log line that cannot be written has nowhere to be reported; the event is lost,
        // as it would be with the formatter's own writer.
        let _ = self
            .inner
            .write_all(line.as_bytes())
            .and_then(|()| self.inner.flush());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A writer into a shared buffer, as the test's stderr.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| io::Error::other("poisoned"))?
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// The hostile serial (a quote and newlines) and a terminal escape, in a field
    /// shown with `%` and in the message: one line, with the text escaped.
    #[test]
    fn node_text_cannot_break_or_forge_a_log_line() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(Escaped(move || writer.clone()))
            .finish();
        let serial = "SN1\"\n2026-12-07T00:00:00Z  INFO onboarded node=victim\u{1b}[2J";
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(serial = %serial, "onboarding refused for {serial}");
            tracing::info!("plain line");
        });
        let bytes = captured.0.lock().unwrap().clone();
        let text = String::from_utf8(bytes).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].contains("SN1\"\\n2026-12-07T00:00:00Z  INFO onboarded node=victim\\u{1b}[2J"),
            "{text}"
        );
        assert!(!text.contains('\u{1b}'));
        assert!(lines[1].ends_with("plain line"), "{text}");
    }
}
