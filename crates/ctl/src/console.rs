//! The thesis operator console: reads command lines (`DS`, `KL`, `M`/`Migration`, `MB`,
//! `DSR`, `KR`, `h`/`help`, `end`, `q`/`quit`), runs each as a sequence, prints its reports,
//! result and, after a migration, the timeline table (and JSON on request).

use crate::driver::Driver;
use ferry_migrate::{ConsoleCommand, LegacyConfig, Level, Outcome};
use std::io::{BufRead, Write};

/// Console settings.
#[derive(Debug, Clone, Default)]
pub struct ConsoleOptions {
    /// The legacy sequences' settings.
    pub legacy: LegacyConfig,
    /// Also print each migration's timeline as JSON.
    pub json: bool,
    /// Print a prompt before each line (interactive use).
    pub prompt: bool,
}

/// Print one finished sequence.
pub fn print_outcome(out: &mut dyn Write, o: &Outcome, json: bool) -> std::io::Result<()> {
    writeln!(
        out,
        "{} {}: {}",
        o.command,
        if o.ok { "succeeded" } else { "FAILED" },
        o.summary
    )?;
    if let Some(r) = &o.result {
        writeln!(out, "result: {r}")?;
    }
    if matches!(o.command.as_str(), "M" | "MB" | "mbb") {
        writeln!(out, "{}", o.timeline.render_table())?;
        if json {
            writeln!(out, "{}", o.timeline.to_json())?;
        }
    }
    Ok(())
}

/// Run one console line; `Ok(Some(outcome))` for a sequence, `Ok(None)` for text-only
/// commands. Returns whether the console should exit.
pub fn run_line(
    line: &str,
    driver: &mut Driver,
    opts: &ConsoleOptions,
    out: &mut dyn Write,
) -> std::io::Result<(Option<Outcome>, bool)> {
    let cmd = ConsoleCommand::parse(line);
    let seq = match cmd.start(&opts.legacy, driver.now()) {
        Ok(s) => s,
        Err(text) => {
            if !text.is_empty() {
                writeln!(out, "{text}")?;
            }
            return Ok((None, false));
        }
    };
    let mut buf: Vec<String> = Vec::new();
    let outcome = driver.run(seq, &mut |r| {
        let tag = match r.level {
            Level::Info => "",
            Level::Warn => "warning: ",
            Level::Error => "error: ",
        };
        buf.push(format!("  {tag}{}", r.text));
    });
    for l in buf {
        writeln!(out, "{l}")?;
    }
    print_outcome(out, &outcome, opts.json)?;
    let quit = cmd == ConsoleCommand::Quit;
    Ok((Some(outcome), quit))
}

/// Run the console on `input` until `q`/`quit` or end of input. Returns every outcome.
pub fn run_console(
    input: &mut dyn BufRead,
    out: &mut dyn Write,
    driver: &mut Driver,
    opts: &ConsoleOptions,
) -> std::io::Result<Vec<Outcome>> {
    let mut outcomes = Vec::new();
    let mut line = String::new();
    loop {
        if opts.prompt {
            write!(out, "ferry> ")?;
            out.flush()?;
        }
        line.clear();
        if input.read_line(&mut line)? == 0 {
            break;
        }
        let (o, quit) = run_line(&line, driver, opts, out)?;
        out.flush()?;
        if let Some(o) = o {
            outcomes.push(o);
        }
        // SIGINT/SIGTERM during a command: it was finished or undone (its summary says
        // which); the console ends after it.
        if quit || crate::interrupt::requested() {
            break;
        }
    }
    Ok(outcomes)
}

/// Standard input for the console that ends like EOF when SIGINT or SIGTERM arrives at the
/// prompt (a blocking `read` on stdin restarts after a signal): a thread reads the lines
/// (each at most 64 kB; longer input is cut there) and the console waits for them, checking
/// [`crate::interrupt::requested`] every 100 ms.
pub struct InterruptibleStdin {
    lines: std::sync::mpsc::Receiver<Vec<u8>>,
    buf: Vec<u8>,
    pos: usize,
    ended: bool,
}

/// Longest console line taken; the rest of a longer line is dropped.
const MAX_LINE: usize = 64 * 1024;

impl InterruptibleStdin {
    /// Starts the reader thread on this process's stdin.
    pub fn new() -> InterruptibleStdin {
        // One line in flight: the reader never buffers unbounded input ahead of the console.
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        std::thread::spawn(move || {
            let stdin = std::io::stdin();
            let mut lock = stdin.lock();
            loop {
                let mut line = Vec::new();
                match std::io::Read::take(&mut lock, MAX_LINE as u64).read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        if !line.ends_with(b"\n") && line.len() >= MAX_LINE {
                            // Drop the rest of an overlong line.
                            let mut rest = Vec::new();
                            let _ = lock.read_until(b'\n', &mut rest);
                            line.push(b'\n');
                        }
                        if tx.send(line).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        InterruptibleStdin {
            lines: rx,
            buf: Vec::new(),
            pos: 0,
            ended: false,
        }
    }
}

impl Default for InterruptibleStdin {
    fn default() -> Self {
        Self::new()
    }
}

impl std::io::Read for InterruptibleStdin {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = {
            let avail = self.fill_buf()?;
            let n = avail.len().min(out.len());
            out[..n].copy_from_slice(&avail[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for InterruptibleStdin {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        while self.pos >= self.buf.len() && !self.ended {
            if crate::interrupt::requested() {
                self.ended = true;
                break;
            }
            match self
                .lines
                .recv_timeout(std::time::Duration::from_millis(100))
            {
                Ok(line) => {
                    self.buf = line;
                    self.pos = 0;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => self.ended = true,
            }
        }
        if self.ended && self.pos >= self.buf.len() {
            return Ok(&[]);
        }
        Ok(&self.buf[self.pos..])
    }

    fn consume(&mut self, amt: usize) {
        self.pos = (self.pos + amt).min(self.buf.len());
    }
}
