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
        if quit {
            break;
        }
    }
    Ok(outcomes)
}
