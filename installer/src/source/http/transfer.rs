//! The download thread: the first request (following redirects), then the body into the
//! channel, resuming when the connection drops or stalls.
//!
//! How it resumes depends on what proves that the file on the server is still the one whose
//! first bytes were delivered (RFC 9110 13.1.5):
//! - a strong `ETag`, or a `Last-Modified` date the same response's `Date` is at least a
//!   second after (RFC 9110 8.8.2.2): `Range` with `If-Range`, and every answer checked;
//! - no such validator, but the caller checks the whole file against a known checksum before
//!   the image counts as written ([`HttpOptions::whole_file_verified`]): a plain `Range`, as a
//!   mix of two files fails that check;
//! - neither: the download restarts from byte zero, and the bytes up to where it broke must
//!   hash to what was delivered before (a running SHA-256 kept only in this case), or the
//!   download fails saying the file changed. Bytes already handed on cannot be taken back, so
//!   this is the only restart that is correct.
//!
//! A `200` answer to a `Range` (a server that ignores Range) is a restart from zero too: the
//! bytes already delivered are read again and skipped, checked as above.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::{Bytes, Incoming};
use hyper::header::{
    CONTENT_LENGTH, CONTENT_RANGE, DATE, ETAG, HeaderMap, HeaderValue, IF_RANGE, LAST_MODIFIED,
    LOCATION, RANGE,
};
use hyper::{Response, StatusCode};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep, timeout};
use url::Url;

use bootkit_common::backoff::{Backoff, Delays};

use super::connect::Connector;
use super::{HttpError, HttpOptions};

/// Redirects followed per request before giving up (curl and browsers use 20 to 50; image
/// servers need one or two).
const MAX_REDIRECTS: usize = 10;
/// Wait before the first resume; doubled for each failure in a row, up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(16);
/// The waits between resumes: exact, since one machine's download has no fleet to spread.
const RESUME_BACKOFF: Backoff = Backoff::new(FIRST_BACKOFF, MAX_BACKOFF);

/// What the server said before the body.
pub(super) struct Head {
    pub content_length: Option<u64>,
}

/// What the reader receives.
pub(super) enum Event {
    Data(Bytes),
    /// The whole body arrived. Without it a closed channel means the thread died.
    Finished,
    Failed(HttpError),
}

/// The download thread's body: runs the download on a one-thread runtime until it ends or the
/// reader goes away.
pub(super) fn run(
    url: Url,
    options: HttpOptions,
    head: oneshot::Sender<Result<Head, HttpError>>,
    events: mpsc::Sender<Event>,
    resumes: Arc<AtomicU32>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            // The receiver is gone only when open() is gone too: nobody to tell.
            let _ = head.send(Err(HttpError::Worker(error)));
            return;
        }
    };
    runtime.block_on(async {
        tokio::select! {
            () = events.closed() => {}
            () = download(url, &options, head, &events, resumes) => {}
        }
    });
    // A DNS lookup may still run on a blocking thread; it ends on its own, nobody waits for it.
    runtime.shutdown_background();
}

async fn download(
    url: Url,
    options: &HttpOptions,
    head: oneshot::Sender<Result<Head, HttpError>>,
    events: &mpsc::Sender<Event>,
    resumes: Arc<AtomicU32>,
) {
    let started = match Connector::new(options) {
        Ok(connector) => Download::start(connector, url, options, resumes).await,
        Err(error) => Err(error),
    };
    let (download, body) = match started {
        Ok(started) => started,
        Err(error) => {
            let _ = head.send(Err(error));
            return;
        }
    };
    if head
        .send(Ok(Head {
            content_length: download.length,
        }))
        .is_err()
    {
        return;
    }
    match download.stream(body, events).await {
        Ok(Ended::Complete) => {
            let _ = events.send(Event::Finished).await;
        }
        Ok(Ended::ReaderGone) => {}
        Err(error) => {
            let _ = events.send(Event::Failed(error)).await;
        }
    }
}

struct Download {
    connector: Connector,
    /// Where the file is, after redirects.
    url: Url,
    received: u64,
    /// The file's size from the first response, when the server said it.
    length: Option<u64>,
    validators: Validators,
    /// How a broken download continues, decided from the first response.
    mode: ResumeMode,
    /// The SHA-256 of every byte delivered so far, kept only in [`ResumeMode::Restart`].
    delivered: Option<Sha256>,
    /// Bytes of a restarted body that were delivered before and are read again, not delivered.
    skip: Option<Skip>,
    stall_timeout: Duration,
    max_resumes: u32,
    resumes: Arc<AtomicU32>,
}

/// How a broken download continues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ResumeMode {
    /// `Range` with `If-Range` carrying the first response's strong validator.
    IfRange,
    /// A plain `Range`: no validator, but the caller checks the whole file's checksum.
    Checksummed,
    /// From byte zero again, the part delivered before checked against its hash.
    Restart,
}

/// The start of a body that repeats bytes delivered before: read, checked, dropped.
struct Skip {
    /// How many bytes are still to skip.
    remaining: u64,
    /// The hash of the skipped bytes and the hash they must have, when it is known.
    check: Option<(Sha256, [u8; 32])>,
}

enum Ended {
    Complete,
    ReaderGone,
}

impl Download {
    async fn start(
        connector: Connector,
        url: Url,
        options: &HttpOptions,
        resumes: Arc<AtomicU32>,
    ) -> Result<(Self, Incoming), HttpError> {
        let (url, response) = get_following_redirects(&connector, url, HeaderMap::new()).await?;
        if response.status() != StatusCode::OK {
            return Err(status_error(&url, &response));
        }
        let length = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse().ok());
        let validators = Validators::of(response.headers());
        let mode = if validators.for_if_range().is_some() {
            ResumeMode::IfRange
        } else if options.whole_file_verified {
            ResumeMode::Checksummed
        } else {
            ResumeMode::Restart
        };
        let download = Self {
            connector,
            url,
            received: 0,
            length,
            validators,
            mode,
            delivered: (mode == ResumeMode::Restart).then(Sha256::new),
            skip: None,
            stall_timeout: options.stall_timeout,
            max_resumes: options.max_resumes,
            resumes,
        };
        Ok((download, response.into_body()))
    }

    /// Streams `body` and every resumed body into `events` until the file is complete.
    async fn stream(
        mut self,
        mut body: Incoming,
        events: &mpsc::Sender<Event>,
    ) -> Result<Ended, HttpError> {
        // Reset by every resume that brought data: only failures in a row back off further.
        let mut delays = RESUME_BACKOFF.delays();
        loop {
            let received_before = self.received;
            let failure = match self.pump(body, events).await {
                Err(error) if error.is_transient() => error,
                ended => return ended,
            };
            if self.received > received_before {
                delays.reset();
            }
            body = self.resume_after(failure, &mut delays).await?;
        }
    }

    /// Moves one body's bytes into `events`.
    async fn pump(
        &mut self,
        mut body: Incoming,
        events: &mpsc::Sender<Event>,
    ) -> Result<Ended, HttpError> {
        loop {
            let frame = match timeout(self.stall_timeout, body.frame()).await {
                Err(_) => {
                    return Err(HttpError::Stalled {
                        url: self.url.to_string(),
                        offset: self.received,
                        timeout: self.stall_timeout,
                    });
                }
                Ok(None) => return self.check_complete().map(|()| Ended::Complete),
                Ok(Some(Err(source))) => {
                    return Err(HttpError::Body {
                        url: self.url.to_string(),
                        offset: self.received,
                        source,
                    });
                }
                Ok(Some(Ok(frame))) => frame,
            };
            // Other frames are trailers: no file bytes in them.
            let Ok(mut data) = frame.into_data() else {
                continue;
            };
            if self.skip.is_some() {
                data = self.skip_repeated(data)?;
                if data.is_empty() {
                    continue;
                }
            }
            self.received += data.len() as u64;
            if let Some(delivered) = &mut self.delivered {
                delivered.update(&data);
            }
            if events.send(Event::Data(data)).await.is_err() {
                return Ok(Ended::ReaderGone);
            }
        }
    }

    /// Drops the start of `data` that repeats bytes delivered before, checking them against
    /// their hash when it is known; returns the rest.
    fn skip_repeated(&mut self, mut data: Bytes) -> Result<Bytes, HttpError> {
        let Some(skip) = &mut self.skip else {
            return Ok(data);
        };
        let count = usize::try_from(skip.remaining).map_or(data.len(), |left| left.min(data.len()));
        let repeated = data.split_to(count);
        if let Some((hasher, _)) = &mut skip.check {
            hasher.update(&repeated);
        }
        skip.remaining -= count as u64;
        if skip.remaining > 0 {
            return Ok(data);
        }
        if let Some(skip) = self.skip.take()
            && let Some((hasher, expected)) = skip.check
            && <[u8; 32]>::from(hasher.finalize()) != expected
        {
            return Err(HttpError::BodyChanged {
                url: self.url.to_string(),
                what: format!(
                    "after a restart from byte 0 its first {} bytes differ from the ones \
                     downloaded before",
                    self.received
                ),
            });
        }
        Ok(data)
    }

    /// A body that ended cleanly is complete unless the server announced more bytes (a
    /// close-delimited body that was cut looks complete: only a length can tell).
    fn check_complete(&self) -> Result<(), HttpError> {
        if let Some(skip) = &self.skip {
            // Shorter than what was delivered before: not the same file.
            return Err(HttpError::BodyChanged {
                url: self.url.to_string(),
                what: format!(
                    "it ended {} bytes before the {} already downloaded",
                    skip.remaining, self.received
                ),
            });
        }
        match self.length {
            Some(expected) if self.received < expected => Err(HttpError::Truncated {
                url: self.url.to_string(),
                offset: self.received,
                expected,
            }),
            _ => Ok(()),
        }
    }

    /// Resumes after `failure`, retrying failed resumes, within `max_resumes` in total.
    async fn resume_after(
        &mut self,
        mut failure: HttpError,
        delays: &mut Delays,
    ) -> Result<Incoming, HttpError> {
        loop {
            let resumes = self.resumes.load(Ordering::Relaxed);
            if resumes >= self.max_resumes {
                return Err(HttpError::TooManyResumes {
                    url: self.url.to_string(),
                    offset: self.received,
                    resumes,
                    last: Box::new(failure),
                });
            }
            sleep(delays.next_delay()).await;
            self.resumes.fetch_add(1, Ordering::Relaxed);
            match self.resume().await {
                Ok(body) => return Ok(body),
                Err(error) if error.is_transient() => failure = error,
                Err(error) => return Err(error),
            }
        }
    }

    /// Asks for the rest of the file and checks that it is the rest of the same file.
    async fn resume(&mut self) -> Result<Incoming, HttpError> {
        // A restart that broke again starts over: nothing of it was delivered.
        self.skip = None;
        let mut headers = HeaderMap::new();
        if self.mode == ResumeMode::Restart {
            eprintln!(
                "bootkit-install: note: the download of {} broke at byte {}; restarting from \
                 byte 0, since the server gave no strong ETag or Last-Modified to resume against \
                 and no sha256 was given: the first {} bytes are downloaded again and must be \
                 the same",
                self.url, self.received, self.received
            );
        } else {
            let range = HeaderValue::from_str(&format!("bytes={}-", self.received))
                .expect("a byte range of ASCII digits is a valid header value");
            headers.insert(RANGE, range);
        }
        if self.mode == ResumeMode::IfRange
            && let Some(validator) = self.validators.for_if_range()
        {
            headers.insert(IF_RANGE, validator.clone());
        }
        let (url, response) =
            get_following_redirects(&self.connector, self.url.clone(), headers).await?;
        self.url = url;
        let changed = |what| HttpError::BodyChanged {
            url: self.url.to_string(),
            what,
        };
        if let Some(what) = self.validators.changed_in(response.headers()) {
            return Err(changed(what));
        }
        match response.status() {
            StatusCode::PARTIAL_CONTENT if self.mode != ResumeMode::Restart => {
                self.check_content_range(response.headers())?;
                Ok(response.into_body())
            }
            StatusCode::OK => {
                self.restart_with(response.headers())?;
                Ok(response.into_body())
            }
            StatusCode::RANGE_NOT_SATISFIABLE => Err(changed(format!(
                "the server says byte {} is past the end of the file",
                self.received
            ))),
            _ => Err(status_error(&self.url, &response)),
        }
    }

    /// Takes a whole-file answer to a resume: the bytes delivered before come again and are
    /// skipped, checked against their hash where no validator or checksum vouches for them.
    fn restart_with(&mut self, headers: &HeaderMap) -> Result<(), HttpError> {
        let changed = |what| HttpError::BodyChanged {
            url: self.url.to_string(),
            what,
        };
        let length_now = headers
            .get(CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u64>().ok());
        if let (Some(before), Some(now)) = (self.length, length_now)
            && before != now
        {
            return Err(changed(format!("it was {before} bytes, now {now}")));
        }
        let check = match (self.mode, &self.delivered) {
            (ResumeMode::Restart, Some(delivered)) => {
                Some((Sha256::new(), delivered.clone().finalize().into()))
            }
            // The server ignored the Range: the If-Range validator came back unchanged (a
            // changed one was refused above), but a missing one proves nothing.
            (ResumeMode::IfRange, _)
                if self.validators.for_if_range() != Validators::of(headers).for_if_range() =>
            {
                return Err(changed(
                    "it answered the resume with the whole file and without the validator it \
                     gave first, so it cannot be the same file for sure"
                        .to_owned(),
                ));
            }
            _ => None,
        };
        if self.mode != ResumeMode::Restart {
            eprintln!(
                "bootkit-install: note: {} ignored the Range request and sent the whole file \
                 again; skipping its first {} bytes, downloaded before",
                self.url, self.received
            );
        }
        self.skip = (self.received > 0).then_some(Skip {
            remaining: self.received,
            check,
        });
        Ok(())
    }

    /// The 206 must start exactly where the download broke, in a file of the same size.
    fn check_content_range(&self, headers: &HeaderMap) -> Result<(), HttpError> {
        let text = headers
            .get(CONTENT_RANGE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        let mismatch = || HttpError::RangeMismatch {
            url: self.url.to_string(),
            offset: self.received,
            content_range: text.to_owned(),
        };
        let (start, total) = parse_content_range(text).ok_or_else(mismatch)?;
        if start != self.received {
            return Err(mismatch());
        }
        match (self.length, total) {
            (Some(before), Some(now)) if before != now => Err(HttpError::BodyChanged {
                url: self.url.to_string(),
                what: format!("it was {before} bytes, now {now}"),
            }),
            _ => Ok(()),
        }
    }
}

/// The validators of the first response, to make sure a resume continues the same file.
struct Validators {
    etag: Option<HeaderValue>,
    last_modified: Option<HeaderValue>,
    /// Whether `last_modified` is strong: the response's `Date` is at least a second later.
    last_modified_strong: bool,
}

impl Validators {
    fn of(headers: &HeaderMap) -> Self {
        let date = |name| {
            headers
                .get(name)
                .and_then(|value: &HeaderValue| value.to_str().ok())
                .and_then(|text| httpdate::parse_http_date(text).ok())
        };
        // RFC 9110 8.8.2.2: a file changed twice within its Last-Modified second would keep
        // the date, so only a date the server's clock had passed by a second is strong.
        let last_modified_strong = match (date(LAST_MODIFIED), date(DATE)) {
            (Some(modified), Some(now)) => now
                .duration_since(modified)
                .is_ok_and(|age| age >= Duration::from_secs(1)),
            _ => false,
        };
        Self {
            etag: headers.get(ETAG).cloned(),
            last_modified: headers.get(LAST_MODIFIED).cloned(),
            last_modified_strong,
        }
    }

    /// If-Range needs a strong validator (RFC 9110 13.1.5): a strong ETag, else a strong
    /// Last-Modified date; a weak ETag or a weak date proves nothing.
    fn for_if_range(&self) -> Option<&HeaderValue> {
        self.etag
            .as_ref()
            .filter(|etag| !etag.as_bytes().starts_with(b"W/"))
            .or(self
                .last_modified
                .as_ref()
                .filter(|_| self.last_modified_strong))
    }

    /// What changed, when a later response names a different version of the file.
    fn changed_in(&self, headers: &HeaderMap) -> Option<String> {
        [(ETAG, &self.etag), (LAST_MODIFIED, &self.last_modified)]
            .into_iter()
            .find_map(|(name, before)| {
                let before = before.as_ref()?;
                let now = headers.get(&name)?;
                let shown =
                    |value: &HeaderValue| String::from_utf8_lossy(value.as_bytes()).into_owned();
                (now != before).then(|| format!("{name} was {}, now {}", shown(before), shown(now)))
            })
    }
}

/// `(first byte, total length)` of a `Content-Range: bytes FIRST-LAST/TOTAL` (TOTAL may be
/// `*`). Hand-written: hyper has no typed headers, and this is the only one needed.
fn parse_content_range(text: &str) -> Option<(u64, Option<u64>)> {
    let (range, total) = text.trim().strip_prefix("bytes ")?.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let first = first.trim().parse().ok()?;
    last.trim().parse::<u64>().ok()?;
    let total = match total.trim() {
        "*" => None,
        total => Some(total.parse().ok()?),
    };
    Some((first, total))
}

/// GET `url`, following redirects; returns the final URL and its response.
async fn get_following_redirects(
    connector: &Connector,
    mut url: Url,
    headers: HeaderMap,
) -> Result<(Url, Response<Incoming>), HttpError> {
    for _ in 0..=MAX_REDIRECTS {
        let response = connector.get(&url, headers.clone()).await?;
        if !matches!(response.status().as_u16(), 301 | 302 | 303 | 307 | 308) {
            return Ok((url, response));
        }
        let redirect_error = |reason: String| HttpError::Redirect {
            url: url.to_string(),
            reason,
        };
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| {
                redirect_error(format!("HTTP {} without a Location", response.status()))
            })?;
        let next = url
            .join(location)
            .map_err(|error| redirect_error(format!("bad Location {location:?}: {error}")))?;
        if !matches!(next.scheme(), "http" | "https") {
            return Err(redirect_error(format!("it points to {next}, not http(s)")));
        }
        url = next;
    }
    Err(HttpError::Redirect {
        url: url.to_string(),
        reason: format!("more than {MAX_REDIRECTS} redirects; check the URL"),
    })
}

fn status_error(url: &Url, response: &Response<Incoming>) -> HttpError {
    let status = response.status();
    let hint = match status.as_u16() {
        404 | 410 => "check the image URL: the server has no such file",
        401 | 403 => "the server refused access: check the URL and the server's access rules",
        407 => {
            "the proxy wants credentials: put them in the proxy URL (http://user:password@host:port)"
        }
        500.. => "the server failed: try again later or check the server's log",
        _ => "check the image URL and the server",
    };
    HttpError::Status {
        url: url.to_string(),
        status: status.as_u16(),
        reason: status.canonical_reason().unwrap_or_default().to_owned(),
        hint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_gives_first_byte_and_total() {
        assert_eq!(
            parse_content_range("bytes 100-199/200"),
            Some((100, Some(200)))
        );
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(parse_content_range("bytes */200"), None);
        assert_eq!(parse_content_range("items 0-1/2"), None);
        assert_eq!(parse_content_range(""), None);
    }

    #[test]
    fn if_range_prefers_a_strong_etag_then_last_modified() {
        let mut headers = HeaderMap::new();
        headers.insert(ETAG, HeaderValue::from_static("W/\"weak\""));
        headers.insert(
            LAST_MODIFIED,
            HeaderValue::from_static("Sun, 22 Nov 2026 03:00:00 GMT"),
        );
        assert!(
            Validators::of(&headers).for_if_range().is_none(),
            "a date without the response's Date is weak"
        );
        headers.insert(
            DATE,
            HeaderValue::from_static("Sun, 22 Nov 2026 03:00:00 GMT"),
        );
        assert!(
            Validators::of(&headers).for_if_range().is_none(),
            "a date in the same second as the response is weak"
        );
        headers.insert(
            DATE,
            HeaderValue::from_static("Sun, 22 Nov 2026 03:00:01 GMT"),
        );
        let validators = Validators::of(&headers);
        assert_eq!(
            validators.for_if_range().unwrap(),
            "Sun, 22 Nov 2026 03:00:00 GMT"
        );
        headers.insert(ETAG, HeaderValue::from_static("\"strong\""));
        assert_eq!(
            Validators::of(&headers).for_if_range().unwrap(),
            "\"strong\""
        );
    }

    #[test]
    fn a_different_etag_or_date_is_a_changed_file() {
        let mut first = HeaderMap::new();
        first.insert(ETAG, HeaderValue::from_static("\"v1\""));
        let validators = Validators::of(&first);
        assert!(validators.changed_in(&first).is_none());
        assert!(
            validators.changed_in(&HeaderMap::new()).is_none(),
            "a missing ETag proves nothing"
        );
        let mut second = HeaderMap::new();
        second.insert(ETAG, HeaderValue::from_static("\"v2\""));
        assert!(validators.changed_in(&second).unwrap().contains("v2"));
    }

    #[test]
    fn backoff_doubles_and_is_bounded() {
        let mut delays = RESUME_BACKOFF.delays();
        assert_eq!(delays.next_delay(), FIRST_BACKOFF);
        assert_eq!(delays.next_delay(), FIRST_BACKOFF * 2);
        let fortieth = (2..=40).map(|_| delays.next_delay()).last();
        assert_eq!(fortieth, Some(MAX_BACKOFF));
    }
}
