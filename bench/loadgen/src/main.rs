//! The benchmark's load generator (`bench/run` drives it). wrk and oha time whole answers only;
//! the benchmark also needs each streamed answer's time to first byte, and an open-loop mode
//! that times every request from when it was due (so a stalled server cannot hide its queue by
//! slowing the generator down). Prints one JSON object per run.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
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
    /// Extra `name: value` headers.
    #[arg(long)]
    header: Vec<String>,
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
}

#[derive(Default)]
struct Tally {
    samples: Vec<Sample>,
    errors: u64,
}

type Sender = SendRequest<Full<Bytes>>;

async fn connect(authority: &str) -> Result<Sender, Box<dyn std::error::Error + Send + Sync>> {
    let stream = tokio::net::TcpStream::connect(authority).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// Sends one request and reads the whole answer; `None` on any failure or non-200.
async fn once(sender: &mut Sender, target: &Target, due: Instant) -> Option<Sample> {
    sender.ready().await.ok()?;
    let mut request = Request::post(target.uri.path())
        .header(hyper::header::HOST, &target.authority)
        .header(hyper::header::CONTENT_TYPE, "application/json");
    for (name, value) in &target.headers {
        request = request.header(name, value);
    }
    let request = request.body(Full::new(target.body.clone())).ok()?;
    let response = sender.send_request(request).await.ok()?;
    let ok = response.status() == 200;
    let mut body = response.into_body();
    let mut first_byte = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.ok()?;
        if first_byte.is_none() && frame.data_ref().is_some_and(|d| !d.is_empty()) {
            first_byte = Some(due.elapsed());
        }
    }
    let total = due.elapsed();
    let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    ok.then(|| Sample {
        first_byte: micros(first_byte.unwrap_or(total)),
        total: micros(total),
    })
}

fn record(tally: &Mutex<Tally>, sample: Option<Sample>, measuring: bool) {
    if !measuring {
        return;
    }
    let mut tally = tally
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match sample {
        Some(sample) => tally.samples.push(sample),
        None => tally.errors += 1,
    }
}

async fn closed_loop(target: Arc<Target>, args: &Args, tally: Arc<Mutex<Tally>>) {
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let end = measure_from + Duration::from_secs_f64(args.duration);
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let (target, tally) = (Arc::clone(&target), Arc::clone(&tally));
        workers.push(tokio::spawn(async move {
            let mut sender = None;
            while Instant::now() < end {
                if sender.is_none() {
                    sender = connect(&target.authority).await.ok();
                }
                let Some(s) = sender.as_mut() else {
                    record(&tally, None, Instant::now() >= measure_from);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let due = Instant::now();
                let sample = once(s, &target, due).await;
                if sample.is_none() {
                    sender = None;
                }
                record(&tally, sample, due >= measure_from && Instant::now() <= end);
            }
        }));
    }
    for worker in workers {
        let _ = worker.await;
    }
}

async fn open_loop(target: Arc<Target>, args: &Args, rate: f64, tally: Arc<Mutex<Tally>>) {
    let pool: Arc<Mutex<Vec<Sender>>> = Arc::default();
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let end = measure_from + Duration::from_secs_f64(args.duration);
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut tasks = Vec::new();
    let mut due = start;
    while due < end {
        tokio::time::sleep_until(due.into()).await;
        let (target, tally, pool) = (Arc::clone(&target), Arc::clone(&tally), Arc::clone(&pool));
        tasks.push(tokio::spawn(async move {
            let pooled = pool
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .pop();
            let sender = match pooled {
                Some(sender) => Some(sender),
                None => connect(&target.authority).await.ok(),
            };
            let Some(mut sender) = sender else {
                record(&tally, None, due >= measure_from);
                return;
            };
            let sample = once(&mut sender, &target, due).await;
            if sample.is_some() {
                pool.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(sender);
            }
            record(&tally, sample, due >= measure_from);
        }));
        due += interval;
    }
    for task in tasks {
        let _ = task.await;
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
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
    });
    let tally = Arc::new(Mutex::new(Tally::default()));
    match args.rate {
        Some(rate) if rate > 0.0 => open_loop(target, &args, rate, Arc::clone(&tally)).await,
        _ => closed_loop(target, &args, Arc::clone(&tally)).await,
    }
    let tally = tally
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut total: Vec<u64> = tally.samples.iter().map(|s| s.total).collect();
    let mut first: Vec<u64> = tally.samples.iter().map(|s| s.first_byte).collect();
    total.sort_unstable();
    first.sort_unstable();
    println!(
        "{}",
        json!({
            "requests": total.len(),
            "errors": tally.errors,
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
