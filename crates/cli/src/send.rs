//! `crosstenant send`: JSON Lines from stdin or a file to an Event Hub, with
//! a progress bar on a terminal and a one-line summary.
//!
//! A file of at most `--batch-size` lines goes in one call to the one-batch
//! sender. Anything larger, and stdin (whose length is unknown), goes through
//! the buffered sender: batches fill in the background and go to several
//! partitions at once, and the progress bar counts delivery reports (events
//! the service answered for), not lines read.
//!
//! A line that is not JSON or too large is reported and skipped; a failure
//! that retrying cannot fix stops the run (events still buffered are reported
//! not sent; over AMQP, aborted with their outcome unknown). The exit code is
//! 1 when any event was not accepted.

use crate::config::{build_credential, CredentialArgs};
use crate::error::{CliError, Outcome};
use crate::output::transport_name;
use crate::targets::EventHubArgs;
use clap::Args;
use crosstenant::eventhubs::{
    BufferedOptions, BufferedSender, DeliveryReports, EnqueueOptions, EventHubSender, SendOptions,
    DEFAULT_MAX_MESSAGE_SIZE,
};
use crosstenant::Error;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};

#[derive(Args)]
pub(crate) struct SendArgs {
    #[command(flatten)]
    target: EventHubArgs,
    /// Read JSON Lines from this file instead of stdin (`-` is stdin).
    #[arg(long, short)]
    file: Option<PathBuf>,
    /// Send every event with this partition key (one partition, in order).
    #[arg(long)]
    partition_key: Option<String>,
    /// Events per call to the sender; it packs them into as few service
    /// batches as the 1 MB limit allows.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    batch_size: u32,
}

/// Counts of one `send` run.
#[derive(Default)]
pub(crate) struct Tally {
    sent: usize,
    failed: usize,
    lines: usize,
}

pub(crate) async fn send(config: &CredentialArgs, args: SendArgs) -> Outcome {
    let Some(target) = args.target.target()? else {
        return Err(CliError::Usage(
            "give --namespace and --hub (or set EVENTHUBS_NAMESPACE and EVENTHUBS_HUB)".into(),
        ));
    };
    let credential = build_credential(config)?;
    let options = match &args.partition_key {
        Some(key) => SendOptions::partition_key(key.clone()),
        None => SendOptions::default(),
    };
    let (mut input, expected) = open_input(args.file.as_deref()).await?;
    let sender = target.open(credential).await?;
    let progress = progress_bar(expected);

    let started = Instant::now();
    let batch_size = args.batch_size as usize;
    let (tally, stopped) = if expected.is_some_and(|lines| lines <= batch_size as u64) {
        send_in_batches(&sender, &mut input, batch_size, &options, &progress).await?
    } else {
        let key = args.partition_key.clone();
        send_buffered(&sender, &mut input, key, &progress).await?
    };
    progress.finish_and_clear();
    // Closing is best effort: the outcome of every event is already known.
    let _ = sender.close().await;

    let seconds = started.elapsed().as_secs_f64();
    let rate = if seconds > 0.0 {
        tally.sent as f64 / seconds
    } else {
        0.0
    };
    println!(
        "sent {}, failed {} in {seconds:.2} s ({rate:.1} events/s) to {}/{} over {}",
        tally.sent,
        tally.failed,
        sender.namespace(),
        sender.hub(),
        transport_name(sender.transport())
    );
    if let Some(why) = &stopped {
        println!("{why}; the rest of the input was not sent");
    }
    Ok(if tally.failed == 0 && stopped.is_none() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

type Input = Box<dyn AsyncBufRead + Unpin + Send>;

/// Reads one line into `line`: `false` at the end of the input.
async fn next_line(input: &mut Input, line: &mut String, number: usize) -> Result<bool, CliError> {
    line.clear();
    let read = input
        .read_line(line)
        .await
        .map_err(|e| CliError::Failed(format!("reading line {number}: {e}")))?;
    Ok(read > 0)
}

/// A small input: `batch_size` events per call to the one-batch sender.
async fn send_in_batches(
    sender: &EventHubSender<Value>,
    input: &mut Input,
    batch_size: usize,
    options: &SendOptions,
    progress: &ProgressBar,
) -> Result<(Tally, Option<String>), CliError> {
    let mut tally = Tally::default();
    let mut batch: Vec<Value> = Vec::with_capacity(batch_size);
    let mut stopped: Option<String> = None;
    let mut line = String::new();
    loop {
        let end = !next_line(input, &mut line, tally.lines + 1).await?;
        if !end {
            tally.lines += 1;
            match parse_line(&line) {
                Ok(Some(event)) => batch.push(event),
                Ok(None) => {}
                Err(why) => {
                    progress.suspend(|| eprintln!("line {}: {why}; not sent", tally.lines));
                    tally.failed += 1;
                    progress.inc(1);
                }
            }
        }
        if batch.len() == batch_size || (end && !batch.is_empty()) {
            if let Err(e) = send_one_batch(sender, &batch, options, &mut tally, progress).await {
                if !e.is_transient() && !end {
                    stopped = Some(format!(
                        "stopped after line {}: the failure above will not go away by retrying",
                        tally.lines
                    ));
                    break;
                }
            }
            batch.clear();
        }
        if end {
            break;
        }
    }
    Ok((tally, stopped))
}

/// A large input, or stdin: every event through the buffered sender, the
/// progress bar and the tally moved by delivery reports.
async fn send_buffered(
    sender: &EventHubSender<Value>,
    input: &mut Input,
    partition_key: Option<String>,
    progress: &ProgressBar,
) -> Result<(Tally, Option<String>), CliError> {
    let (buffered, reports) = sender.buffered(BufferedOptions::default()).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let counter = tokio::spawn(count_reports(
        reports,
        buffered.clone(),
        progress.clone(),
        stop.clone(),
    ));
    let options = match partition_key {
        Some(key) => EnqueueOptions::partition_key(key),
        None => EnqueueOptions::default(),
    };
    let mut lines = 0;
    let mut skipped = 0;
    let mut line = String::new();
    while !stop.load(Ordering::Acquire) && next_line(input, &mut line, lines + 1).await? {
        lines += 1;
        match parse_line(&line) {
            Ok(Some(event)) => {
                // Waits for room when the buffer is full (back-pressure);
                // refused only once the run was stopped.
                if let Err(e) = buffered.enqueue(&event, options.clone()).await {
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    return Err(e.into());
                }
            }
            Ok(None) => {}
            Err(why) => {
                progress.suspend(|| eprintln!("line {lines}: {why}; not sent"));
                skipped += 1;
                progress.inc(1);
            }
        }
    }
    buffered.close().await;
    drop(buffered);
    let mut tally = counter
        .await
        .map_err(|e| CliError::Failed(format!("counting delivery reports: {e}")))?;
    tally.failed += skipped;
    tally.lines = lines;
    let stopped = stop.load(Ordering::Acquire).then(|| {
        format!(
            "stopped after line {lines}: the failure above will not go away by retrying, \
             and events still buffered were not sent"
        )
    });
    Ok((tally, stopped))
}

/// Counts delivery reports until the sender is closed. Prints the first
/// failure of each kind in full (not one line per event), and on the first
/// failure retrying cannot fix, aborts the buffered sender (what is still
/// buffered is reported not sent) and raises `stop` for the reading loop.
async fn count_reports(
    mut reports: DeliveryReports,
    buffered: BufferedSender<Value>,
    progress: ProgressBar,
    stop: Arc<AtomicBool>,
) -> Tally {
    let mut tally = Tally::default();
    let mut seen = std::collections::HashSet::new();
    let mut buffered = Some(buffered);
    // In chunks: one wake-up per chunk, not per report.
    let mut chunk = Vec::with_capacity(1024);
    while reports.recv_many(&mut chunk, 1024).await > 0 {
        progress.inc(chunk.len() as u64);
        for report in chunk.drain(..) {
            match report.outcome {
                Ok(()) => tally.sent += 1,
                Err(e) => {
                    tally.failed += 1;
                    let text = e.to_string();
                    if seen.insert(text.clone()) {
                        progress.suspend(|| {
                            eprintln!("error: event {} not accepted: {text}", report.message_id)
                        });
                    }
                    if !e.is_transient() {
                        if let Some(buffered) = buffered.take() {
                            stop.store(true, Ordering::Release);
                            // Reports of what it drops arrive on `reports`; the
                            // abort itself runs beside this loop.
                            tokio::spawn(async move { buffered.abort().await });
                        }
                    }
                }
            }
        }
    }
    tally
}

/// The input and, for a file, how many lines it has (for the progress bar).
pub(crate) async fn open_input(file: Option<&Path>) -> Result<(Input, Option<u64>), CliError> {
    match file {
        Some(path) if path != Path::new("-") => {
            let cannot =
                |e: std::io::Error| CliError::Usage(format!("cannot read {}: {e}", path.display()));
            // One pass to count lines, so the bar can show how far along it is.
            let mut counter = BufReader::new(tokio::fs::File::open(path).await.map_err(cannot)?);
            let mut count = 0u64;
            let mut scratch = Vec::new();
            while counter
                .read_until(b'\n', &mut scratch)
                .await
                .map_err(cannot)?
                > 0
            {
                count += 1;
                scratch.clear();
            }
            let file = tokio::fs::File::open(path).await.map_err(cannot)?;
            Ok((Box::new(BufReader::new(file)), Some(count)))
        }
        _ => Ok((Box::new(BufReader::new(tokio::io::stdin())), None)),
    }
}

/// One line of JSON Lines: `Ok(None)` for a blank line.
pub(crate) fn parse_line(line: &str) -> Result<Option<Value>, String> {
    let text = line.trim();
    if text.is_empty() {
        return Ok(None);
    }
    // Leave room for the envelope; the sender would refuse the whole batch
    // for one oversized event, so refuse just that line here.
    if text.len() as u64 > DEFAULT_MAX_MESSAGE_SIZE - 4096 {
        return Err(format!(
            "{} bytes, over the 1 MB limit of an Event Hubs event",
            text.len()
        ));
    }
    serde_json::from_str(text)
        .map(Some)
        .map_err(|e| format!("not JSON ({e})"))
}

/// Sends one batch and counts its events as sent or failed.
pub(crate) async fn send_one_batch(
    sender: &EventHubSender<Value>,
    batch: &[Value],
    options: &SendOptions,
    tally: &mut Tally,
    progress: &ProgressBar,
) -> Result<(), Error> {
    let total = batch.len();
    let result = sender.send_batch(batch, options.clone()).await;
    let failed = match &result {
        Ok(()) => 0,
        // Events go in order: the first `accepted` of the batch are stored.
        Err(Error::EventHubs(e)) => e.not_accepted(total).len(),
        Err(_) => total,
    };
    tally.sent += total - failed;
    tally.failed += failed;
    progress.inc(total as u64);
    if let Err(e) = &result {
        progress.suspend(|| eprintln!("error: {failed} of {total} events not accepted: {e}"));
    }
    result
}

/// A progress bar on stderr, only when stderr is a terminal: piped or
/// redirected output stays clean.
pub(crate) fn progress_bar(expected: Option<u64>) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let (bar, template) = match expected {
        Some(n) => (
            ProgressBar::new(n),
            "{bar:40} {pos}/{len} lines  {per_sec}  eta {eta}",
        ),
        None => (ProgressBar::no_length(), "{spinner} {pos} lines  {per_sec}"),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
