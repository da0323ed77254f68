//! The benchmark's load generator (`bench/run` drives it). wrk and oha time whole answers only;
//! the benchmark also needs each streamed answer's time to first byte, and an open-loop mode
//! that times every request from when it was due (so a stalled server cannot hide its queue by
//! slowing the generator down). Prints one JSON object per run.
//!
//! The measured window is `[warmup, warmup + duration)`. A request counts if it started inside
//! it: answered by its end, it is a sample; still in flight at its end, it is `incomplete` (and
//! abandoned, so a slow server cannot stretch the window). Peak in-flight requests and peak
//! receiving ones (first byte in, last byte not yet) are reported, so "1,000 open streams" is
//! measured, not assumed.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use serde_json::json;

#[derive(Parser, Debug)]
struct Args {
    /// `http://host:port/path` to POST to.
    #[arg(long)]
    url: Uri,
    /// The JSON body to send.
    #[arg(long)]
    body: PathBuf,
    /// Connections, each with one request in flight (closed loop).
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Requests per second, started on schedule whatever the answers do (open loop).
    #[arg(long)]
    rate: Option<f64>,
    /// Seconds measured.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Extra `name: value` headers (repeatable), e.g. a peer gateway's routing headers.
    #[arg(long)]
    header: Vec<String>,
    /// An answer whose last 256 bytes do not contain this text counts as an error (a stream
    /// cut short with a 200 is not a success: pass `[DONE]` for OpenAI streams).
    #[arg(long)]
    expect_tail: Option<String>,
}

/// One answered request, in microseconds from when it was due.
#[derive(Clone, Copy)]
struct Sample {
    first_byte: u64,
    total: u64,
}

struct Target {
    uri: Uri,
    authority: String,
    body: Bytes,
    headers: Vec<(String, String)>,
    expect_tail: Option<Vec<u8>>,
}

#[derive(Default)]
struct Tally {
    samples: Vec<Sample>,
    errors: u64,
    incomplete: u64,
    /// The first failure's description, so a report can say why a target failed.
    first_error: Option<String>,
}

/// Requests in flight and receiving now, with their peaks.
#[derive(Default)]
struct Gauge {
    in_flight: AtomicUsize,
    peak_in_flight: AtomicUsize,
    receiving: AtomicUsize,
    peak_receiving: AtomicUsize,
}

/// Holds one unit of a gauge's count while alive: a request abandoned at the window's end is
/// dropped mid-flight and must still leave the count.
struct Held<'a> {
    now: &'a AtomicUsize,
}

impl<'a> Held<'a> {
    fn take(now: &'a AtomicUsize, peak: &AtomicUsize) -> Self {
        let current = now.fetch_add(1, Ordering::Relaxed) + 1;
        peak.fetch_max(current, Ordering::Relaxed);
        Self { now }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.now.fetch_sub(1, Ordering::Relaxed);
    }
}

type Sender = SendRequest<Full<Bytes>>;
type Failure = Box<dyn std::error::Error + Send + Sync>;

async fn connect(authority: &str) -> Result<Sender, Failure> {
    let stream = tokio::net::TcpStream::connect(authority).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// Sends one request and reads the whole answer; an error on any failure, a non-200 or a
/// missing expected tail.
async fn once(
    sender: &mut Sender,
    target: &Target,
    due: Instant,
    gauge: &Gauge,
) -> Result<Sample, String> {
    sender
        .ready()
        .await
        .map_err(|e| format!("connection: {e}"))?;
    let _flying = Held::take(&gauge.in_flight, &gauge.peak_in_flight);
    let mut request = Request::post(target.uri.path())
        .header(hyper::header::HOST, &target.authority)
        .header(hyper::header::CONTENT_TYPE, "application/json");
    for (name, value) in &target.headers {
        request = request.header(name, value);
    }
    let request = request
        .body(Full::new(target.body.clone()))
        .map_err(|e| format!("request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("send: {e}"))?;
    let status = response.status();
    let mut body = response.into_body();
    let mut first_byte = None;
    let mut receiving = None;
    let mut tail: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("body: {e}"))?;
        let Some(data) = frame.data_ref().filter(|d| !d.is_empty()) else {
            continue;
        };
        if first_byte.is_none() {
            first_byte = Some(due.elapsed());
            receiving = Some(Held::take(&gauge.receiving, &gauge.peak_receiving));
        }
        tail.extend_from_slice(data);
        if tail.len() > 4096 {
            tail.drain(..tail.len() - 256);
        }
    }
    drop(receiving);
    let total = due.elapsed();
    if status != 200 {
        let text = String::from_utf8_lossy(&tail);
        return Err(format!("status {status}: {}", text.trim()));
    }
    if let Some(expected) = &target.expect_tail {
        let last = &tail[tail.len().saturating_sub(256)..];
        if !last
            .windows(expected.len())
            .any(|w| w == expected.as_slice())
        {
            let text = String::from_utf8_lossy(last);
            return Err(format!(
                "answer ends without the expected tail: {}",
                text.trim()
            ));
        }
    }
    let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    Ok(Sample {
        first_byte: micros(first_byte.unwrap_or(total)),
        total: micros(total),
    })
}

/// What became of one request.
enum Outcome {
    Done(Sample),
    Failed(String),
    /// Still in flight when the window closed.
    Incomplete,
}

fn record(tally: &Mutex<Tally>, outcome: Outcome, measuring: bool) {
    if !measuring {
        return;
    }
    let mut tally = tally.lock().unwrap_or_else(PoisonError::into_inner);
    match outcome {
        Outcome::Done(sample) => tally.samples.push(sample),
        Outcome::Failed(error) => {
            tally.errors += 1;
            tally.first_error.get_or_insert(error);
        }
        Outcome::Incomplete => tally.incomplete += 1,
    }
}

/// Runs one request, abandoning it at `end`.
async fn timed(
    sender: &mut Sender,
    target: &Target,
    due: Instant,
    end: Instant,
    gauge: &Gauge,
) -> Outcome {
    match tokio::time::timeout_at(end.into(), once(sender, target, due, gauge)).await {
        Ok(Ok(sample)) => Outcome::Done(sample),
        Ok(Err(error)) => Outcome::Failed(error),
        Err(_) => Outcome::Incomplete,
    }
}

struct Window {
    measure_from: Instant,
    end: Instant,
}

impl Window {
    fn of(args: &Args) -> Self {
        let measure_from = Instant::now() + Duration::from_secs_f64(args.warmup);
        Self {
            measure_from,
            end: measure_from + Duration::from_secs_f64(args.duration),
        }
    }
}

async fn closed_loop(
    target: Arc<Target>,
    args: &Args,
    tally: Arc<Mutex<Tally>>,
    gauge: Arc<Gauge>,
) {
    let window = Arc::new(Window::of(args));
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let (target, tally, gauge, window) = (
            Arc::clone(&target),
            Arc::clone(&tally),
            Arc::clone(&gauge),
            Arc::clone(&window),
        );
        workers.push(tokio::spawn(async move {
            let mut sender = None;
            while Instant::now() < window.end {
                if sender.is_none() {
                    let connected =
                        tokio::time::timeout_at(window.end.into(), connect(&target.authority))
                            .await;
                    match connected {
                        Ok(Ok(s)) => sender = Some(s),
                        Ok(Err(error)) => {
                            let measuring = Instant::now() >= window.measure_from;
                            record(
                                &tally,
                                Outcome::Failed(format!("connect: {error}")),
                                measuring,
                            );
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                        Err(_) => break,
                    }
                }
                let Some(s) = sender.as_mut() else { continue };
                let due = Instant::now();
                let outcome = timed(s, &target, due, window.end, &gauge).await;
                if !matches!(outcome, Outcome::Done(_)) {
                    sender = None;
                }
                record(&tally, outcome, due >= window.measure_from);
            }
        }));
    }
    for worker in workers {
        let _ = worker.await;
    }
}

async fn open_loop(
    target: Arc<Target>,
    args: &Args,
    rate: f64,
    tally: Arc<Mutex<Tally>>,
    gauge: Arc<Gauge>,
) {
    let pool: Arc<Mutex<Vec<Sender>>> = Arc::default();
    let window = Arc::new(Window::of(args));
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut tasks = Vec::new();
    let mut due = Instant::now();
    while due < window.end {
        tokio::time::sleep_until(due.into()).await;
        let (target, tally, pool, gauge, window) = (
            Arc::clone(&target),
            Arc::clone(&tally),
            Arc::clone(&pool),
            Arc::clone(&gauge),
            Arc::clone(&window),
        );
        tasks.push(tokio::spawn(async move {
            let measuring = due >= window.measure_from;
            // A connection the target closed while it sat idle (its keep-alive timeout) is
            // dropped, as a client's pool drops it, not sent on.
            let pooled = {
                let mut pool = pool.lock().unwrap_or_else(PoisonError::into_inner);
                std::iter::from_fn(|| pool.pop()).find(|sender| !sender.is_closed())
            };
            let mut sender = match pooled {
                Some(sender) => sender,
                None => {
                    match tokio::time::timeout_at(window.end.into(), connect(&target.authority))
                        .await
                    {
                        Ok(Ok(sender)) => sender,
                        Ok(Err(error)) => {
                            record(
                                &tally,
                                Outcome::Failed(format!("connect: {error}")),
                                measuring,
                            );
                            return;
                        }
                        Err(_) => {
                            record(&tally, Outcome::Incomplete, measuring);
                            return;
                        }
                    }
                }
            };
            let outcome = timed(&mut sender, &target, due, window.end, &gauge).await;
            if matches!(outcome, Outcome::Done(_)) {
                pool.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(sender);
            }
            record(&tally, outcome, measuring);
        }));
        due += interval;
    }
    for task in tasks {
        let _ = task.await;
    }
}

/// Milliseconds; `None` (JSON null) when nothing was answered, never a made-up zero.
fn percentile(sorted: &[u64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0)
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let args = Args::parse();
    let authority = args
        .url
        .authority()
        .ok_or("the URL needs host:port")?
        .to_string();
    let headers = args
        .header
        .iter()
        .filter_map(|h| h.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let target = Arc::new(Target {
        uri: args.url.clone(),
        authority,
        body: Bytes::from(std::fs::read(&args.body)?),
        headers,
        expect_tail: args.expect_tail.as_ref().map(|t| t.as_bytes().to_vec()),
    });
    let tally = Arc::new(Mutex::new(Tally::default()));
    let gauge = Arc::new(Gauge::default());
    match args.rate {
        Some(rate) if rate > 0.0 => {
            open_loop(target, &args, rate, Arc::clone(&tally), Arc::clone(&gauge)).await;
        }
        _ => closed_loop(target, &args, Arc::clone(&tally), Arc::clone(&gauge)).await,
    }
    let tally = tally.lock().unwrap_or_else(PoisonError::into_inner);
    let mut total: Vec<u64> = tally.samples.iter().map(|s| s.total).collect();
    let mut first: Vec<u64> = tally.samples.iter().map(|s| s.first_byte).collect();
    total.sort_unstable();
    first.sort_unstable();
    println!(
        "{}",
        json!({
            "requests": total.len(),
            "errors": tally.errors,
            "incomplete": tally.incomplete,
            "first_error": tally.first_error,
            "peak_in_flight": gauge.peak_in_flight.load(Ordering::Relaxed),
            "peak_receiving": gauge.peak_receiving.load(Ordering::Relaxed),
            "rps": total.len() as f64 / args.duration,
            "p50_ms": percentile(&total, 50.0),
            "p90_ms": percentile(&total, 90.0),
            "p99_ms": percentile(&total, 99.0),
            "ttfb_p50_ms": percentile(&first, 50.0),
            "ttfb_p99_ms": percentile(&first, 99.0),
        })
    );
    Ok(())
}
