//! Static files: a directory (or one file) served with the headers browsers and caches expect,
//! never outside its root, with all file I/O off the loop.

mod conditional;
mod io;
mod mime;
mod resolve;

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use crate::http::h1::date::format_imf;
use crate::request::Request;
use crate::response::Response;

use conditional::{Coding, RangeAnswer, Validators};
pub(crate) use io::{io_class, IO_CLASS};

/// Files up to this size are read whole in the job that opens them; larger ones are streamed.
const SMALL_FILE: u64 = 64 * 1024;

/// Serves files from a directory, or one file, for `GET` and `HEAD`.
///
/// What a client gets:
/// - `Content-Type` from the extension (`text/html; charset=utf-8` for `.html`; unknown types
///   are `application/octet-stream`); `index.html` for a directory (a directory asked for
///   without its final `/` is redirected, 308, so relative links in the page work).
/// - `ETag` (from size and modification time) and `Last-Modified`; `If-None-Match` or
///   `If-Modified-Since` that match give `304 Not Modified`; `Cache-Control` as configured.
/// - One `Range: bytes=` range (`a-b`, `a-`, `-n`) gives `206` with `Content-Range`, an
///   unsatisfiable one `416`; `If-Range` is honoured; `Accept-Ranges: bytes` is always sent.
///   Several ranges in one request get the whole file (`200`).
/// - A precompressed sibling (`app.js.br`, `app.js.gz`) when `Accept-Encoding` allows it, with
///   `Content-Encoding` and `Vary: Accept-Encoding`; range requests get the plain file.
/// - `404` for anything not there, and the same `404` for anything refused: `..` and `.`
///   segments (also percent-encoded: `%2e%2e`), encoded separators (`%2f`, `%5c`), backslashes,
///   NUL and control bytes, malformed escapes, dotfiles (`.env`, `.git/`), and symlinks whose
///   target is outside the root. A client cannot tell "refused" from "absent".
///
/// File I/O never runs on the event loop nor on the CPU pool: opening and reading are jobs of a
/// `files` pool class of their own (4 workers, 256 queued; shed with 503 beyond). Files over
/// 64 KiB are streamed in 64 KiB chunks with at most a few chunks in memory per download,
/// whatever the client's speed.
///
/// # Examples
///
/// ```no_run
/// use steadyloop::{Request, Router, StaticFiles};
///
/// let files = StaticFiles::dir("/static", "public").cache_control("max-age=3600");
/// let app = Router::new().get("/static/*path", move |req: Request| {
///     let files = files.clone();
///     async move { files.serve(&req).await }
/// });
/// # let _ = app;
/// ```
#[derive(Clone)]
pub struct StaticFiles {
    /// The settings, shared by every request's future.
    inner: Arc<Settings>,
}

/// What a [`StaticFiles`] serves and how.
struct Settings {
    /// The directory or file.
    source: Source,
    /// The mount point, without a final `/` (`""` for the root).
    prefix: String,
    /// The `Cache-Control` value; `None` sends none.
    cache_control: Option<String>,
    /// The file served for a directory; `None` gives 404 for directories.
    index: Option<String>,
    /// Whether `.br` and `.gz` siblings are looked for.
    precompressed: bool,
}

/// Where files come from.
#[derive(Debug)]
enum Source {
    /// A directory; request paths below the prefix name files under it.
    Dir(PathBuf),
    /// One file, whatever the request path.
    File(PathBuf),
}

impl StaticFiles {
    /// Serves the files under `dir` for request paths below `prefix` (`/static/app.js` →
    /// `dir/app.js`). `prefix` is a path such as `"/static"` or `""`/`"/"` for the root.
    pub fn dir(prefix: &str, dir: impl Into<PathBuf>) -> StaticFiles {
        StaticFiles::with_source(prefix, Source::Dir(dir.into()))
    }

    /// Serves the file at `path` for any request it is asked to answer (mount it on one route).
    pub fn file(path: impl Into<PathBuf>) -> StaticFiles {
        StaticFiles::with_source("", Source::File(path.into()))
    }

    /// Builds the settings with their defaults.
    fn with_source(prefix: &str, source: Source) -> StaticFiles {
        StaticFiles {
            inner: Arc::new(Settings {
                source,
                prefix: prefix.trim_end_matches('/').to_string(),
                cache_control: Some("no-cache".to_string()),
                index: Some("index.html".to_string()),
                precompressed: true,
            }),
        }
    }

    /// Sets the `Cache-Control` value sent with every file (`None` sends none). Defaults to
    /// `no-cache`: browsers keep the file but revalidate it each time, which costs a `304`, so a
    /// device's page is never stale after an update.
    pub fn cache_control(self, value: impl Into<Option<&'static str>>) -> StaticFiles {
        self.edit(|s| s.cache_control = value.into().map(str::to_string))
    }

    /// Sets the file served for a directory (`None`: directories are 404). Defaults to
    /// `index.html`.
    pub fn index(self, name: impl Into<Option<&'static str>>) -> StaticFiles {
        self.edit(|s| s.index = name.into().map(str::to_string))
    }

    /// Sets whether precompressed `.br` and `.gz` siblings are served to clients that accept
    /// them. Defaults to `true`.
    pub fn precompressed(self, enabled: bool) -> StaticFiles {
        self.edit(|s| s.precompressed = enabled)
    }

    /// Applies `f` to the settings (they are shared only once requests are served).
    fn edit(mut self, f: impl FnOnce(&mut Settings)) -> StaticFiles {
        match Arc::get_mut(&mut self.inner) {
            Some(settings) => f(settings),
            None => {
                let mut settings = Settings {
                    source: match &self.inner.source {
                        Source::Dir(p) => Source::Dir(p.clone()),
                        Source::File(p) => Source::File(p.clone()),
                    },
                    prefix: self.inner.prefix.clone(),
                    cache_control: self.inner.cache_control.clone(),
                    index: self.inner.index.clone(),
                    precompressed: self.inner.precompressed,
                };
                f(&mut settings);
                self.inner = Arc::new(settings);
            }
        }
        self
    }

    /// Returns the mount prefix (without a final `/`) of a directory, or `None` for one file.
    pub(crate) fn dir_prefix(&self) -> Option<&str> {
        matches!(self.inner.source, Source::Dir(_)).then_some(self.inner.prefix.as_str())
    }

    /// Answers `req` from the files: see the type's docs for what that means.
    ///
    /// The future is `'static` and does its file work on the `files` class, so it is cheap to
    /// poll on the loop.
    pub fn serve(&self, req: &Request) -> impl std::future::Future<Output = Response> + 'static {
        let settings = self.inner.clone();
        let ask = Ask::from_request(req, &settings);
        async move {
            let ask = match ask {
                Ok(ask) => ask,
                Err(response) => return response,
            };
            answer(settings, ask).await
        }
    }
}

impl fmt::Debug for StaticFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticFiles")
            .field("source", &self.inner.source)
            .field("prefix", &self.inner.prefix)
            .field("cache_control", &self.inner.cache_control)
            .field("index", &self.inner.index)
            .field("precompressed", &self.inner.precompressed)
            .finish()
    }
}

/// What a request asks for, taken from it on the loop (so the job needs no `Request`).
struct Ask {
    /// `true` for `HEAD`.
    head: bool,
    /// The checked relative path (empty for the root or the single file).
    relative: PathBuf,
    /// The request path ended with `/`.
    trailing_slash: bool,
    /// The normalised path below the prefix, still encoded, for a redirect.
    encoded: String,
    /// The raw query, kept on a redirect.
    query: String,
    /// Codings the client accepts, in our order of preference; empty when a range is asked
    /// for (ranges apply to the plain file).
    codings: Vec<Coding>,
    /// `If-None-Match`.
    if_none_match: Option<String>,
    /// `If-Modified-Since`.
    if_modified_since: Option<String>,
    /// `Range`, for `GET` only.
    range: Option<String>,
    /// `If-Range`.
    if_range: Option<String>,
}

impl Ask {
    /// Reads what matters from `req`, or the immediate answer (405, 404).
    fn from_request(req: &Request, settings: &Settings) -> Result<Ask, Response> {
        let head = match req.method() {
            "GET" => false,
            "HEAD" => true,
            _ => {
                return Err(Response::text("method not allowed\n")
                    .with_status(405)
                    .with_header("Allow", "GET, HEAD"))
            }
        };
        let (relative, trailing_slash, encoded) = match settings.source {
            Source::File(_) => (PathBuf::new(), false, String::new()),
            Source::Dir(_) => {
                let below = req
                    .path()
                    .strip_prefix(settings.prefix.as_str())
                    .filter(|rest| rest.is_empty() || rest.starts_with('/'))
                    .ok_or_else(not_found)?;
                let (relative, slash) = resolve::relative_path(below).ok_or_else(not_found)?;
                let encoded = below
                    .split('/')
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join("/");
                (relative, slash, encoded)
            }
        };
        let header = |name: &str| req.header(name).map(str::to_string);
        let range = if head { None } else { header("range") };
        let codings = if settings.precompressed && range.is_none() {
            conditional::accepted_codings(req.header("accept-encoding"))
        } else {
            Vec::new()
        };
        Ok(Ask {
            head,
            relative,
            trailing_slash,
            encoded,
            query: req.raw_query().to_string(),
            codings,
            if_none_match: header("if-none-match"),
            if_modified_since: header("if-modified-since"),
            range,
            if_range: header("if-range"),
        })
    }
}

/// The file a job found.
struct Found {
    /// The open file (the sibling, for a coding).
    file: File,
    /// The path whose extension gives the content type (never the sibling's).
    typed_as: PathBuf,
    /// Its length.
    len: u64,
    /// Its modification time.
    modified: SystemTime,
    /// The coding of a precompressed sibling, if one is served.
    coding: Option<Coding>,
    /// The whole content, for small files.
    content: Option<Vec<u8>>,
}

/// What the opening job decided.
enum Opened {
    /// Serve this.
    File(Found),
    /// A directory asked for without its `/`: redirect.
    AddSlash,
    /// Absent or refused: 404.
    NotFound,
}

/// The common 404, the same for absent and refused paths.
fn not_found() -> Response {
    Response::text("not found\n").with_status(404)
}

/// Opens the file on the `files` class, then answers from its metadata on the loop.
async fn answer(settings: Arc<Settings>, ask: Ask) -> Response {
    let job = {
        let settings = settings.clone();
        let relative = ask.relative.clone();
        let codings = ask.codings.clone();
        let trailing_slash = ask.trailing_slash;
        move || open(&settings, &relative, trailing_slash, &codings)
    };
    let found = match io::run(job).await {
        Ok(Opened::File(found)) => found,
        Ok(Opened::NotFound) => return not_found(),
        Ok(Opened::AddSlash) => {
            // Built from the checked segments only, so it always stays on this server.
            let mut location = if ask.encoded.is_empty() {
                format!("{}/", settings.prefix)
            } else {
                format!("{}/{}/", settings.prefix, ask.encoded)
            };
            if location.starts_with("//") {
                location.remove(0);
            }
            if !ask.query.is_empty() {
                location = format!("{location}?{}", ask.query);
            }
            return Response::new(308).with_header("Location", location);
        }
        Err(err) => return err.into_response(),
    };
    respond(&settings, &ask, found)
}

/// Finds, checks and opens the file (blocking: runs on the `files` class).
fn open(settings: &Settings, relative: &Path, trailing_slash: bool, codings: &[Coding]) -> Opened {
    let path = match &settings.source {
        Source::File(path) => match path.canonicalize() {
            Ok(path) => path,
            Err(_) => return Opened::NotFound,
        },
        Source::Dir(dir) => {
            let Ok(root) = dir.canonicalize() else {
                return Opened::NotFound;
            };
            let Some(path) = resolve::confine(&root, relative) else {
                return Opened::NotFound;
            };
            if path.is_dir() {
                let Some(index) = &settings.index else {
                    return Opened::NotFound;
                };
                if !trailing_slash {
                    return Opened::AddSlash;
                }
                match resolve::confine(&root, &relative.join(index)) {
                    Some(index) => index,
                    None => return Opened::NotFound,
                }
            } else {
                path
            }
        }
    };
    // A sibling is taken only if it is a regular file next to the original (not a symlink out).
    for coding in codings {
        let mut name = path.clone().into_os_string();
        name.push(".");
        name.push(coding.suffix());
        let sibling = PathBuf::from(name);
        let is_plain_file = std::fs::symlink_metadata(&sibling).is_ok_and(|m| m.is_file());
        if is_plain_file {
            if let Some(found) = load(&sibling, &path, Some(*coding)) {
                return Opened::File(found);
            }
        }
    }
    match load(&path, &path, None) {
        Some(found) => Opened::File(found),
        None => Opened::NotFound,
    }
}

/// Opens `path` and reads its metadata (and its content, if small).
fn load(path: &Path, typed_as: &Path, coding: Option<Coding>) -> Option<Found> {
    let file = File::open(path).ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() {
        return None;
    }
    let len = meta.len();
    let content = if len <= SMALL_FILE {
        Some(io::read_at(&file, 0, len as usize).ok()?)
    } else {
        None
    };
    Some(Found {
        file,
        typed_as: typed_as.to_path_buf(),
        len: content.as_ref().map_or(len, |c| c.len() as u64),
        modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        coding,
        content,
    })
}

/// Builds the response for a found file: 304, 416, 206 or 200.
fn respond(settings: &Settings, ask: &Ask, found: Found) -> Response {
    let validators = Validators::new(found.len, found.modified, found.coding.map(Coding::token));
    let mut headers: Vec<(&str, String)> = vec![
        ("ETag", validators.etag.clone()),
        ("Last-Modified", format_imf(validators.modified)),
        ("Accept-Ranges", "bytes".to_string()),
    ];
    if let Some(cache) = &settings.cache_control {
        headers.push(("Cache-Control", cache.clone()));
    }
    if settings.precompressed {
        headers.push(("Vary", "Accept-Encoding".to_string()));
    }
    let with_headers = |mut response: Response| {
        for (name, value) in &headers {
            response = response.with_header(*name, value.clone());
        }
        response
    };

    if conditional::is_not_modified(
        ask.if_none_match.as_deref(),
        ask.if_modified_since.as_deref(),
        &validators,
    ) {
        return with_headers(Response::new(304));
    }

    let range = if conditional::if_range_holds(ask.if_range.as_deref(), &validators) {
        conditional::byte_range(ask.range.as_deref(), found.len)
    } else {
        RangeAnswer::Whole
    };
    let (status, start, len) = match range {
        RangeAnswer::Whole => (200, 0, found.len),
        RangeAnswer::Part { start, end } => (206, start, end - start + 1),
        RangeAnswer::Unsatisfiable => {
            return with_headers(
                Response::text("range not satisfiable\n")
                    .with_status(416)
                    .with_header("Content-Range", format!("bytes */{}", found.len)),
            );
        }
    };

    let mut response = match found.content {
        Some(content) => {
            let end = (start + len) as usize;
            Response::new(status).with_body(content[start as usize..end].to_vec())
        }
        // HEAD of a large file: the headers only; the body channel closes at once.
        None if ask.head => Response::channel(1)
            .1
            .with_stream_len(len)
            .with_status(status),
        None => io::stream(Arc::new(found.file), start, len).with_status(status),
    };
    response = response.with_header("Content-Type", mime::content_type(&found.typed_as));
    if let Some(coding) = found.coding {
        response = response.with_header("Content-Encoding", coding.token());
    }
    if status == 206 {
        response = response.with_header(
            "Content-Range",
            format!("bytes {start}-{}/{}", start + len - 1, found.len),
        );
    }
    with_headers(response)
}
