//! `slipway-fuzz [TARGET|all] --seconds N [--seed S]`: fuzzes each target in a child process and
//! prints a table (execs, execs/s, panics, aborts, hangs, peak RSS). `--replay FILE` runs one
//! saved input in this process, so its panic prints with a backtrace. Exit status 1 when
//! anything was found.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{CommandFactory, FromArgMatches, Parser};
use slipway_fuzz::child::{self, ChildPlan};
use slipway_fuzz::driver::{self, DriverOptions};
use slipway_fuzz::seeds::SeedRoots;
use slipway_fuzz::targets::{self, TARGETS, Target};

/// Mutational fuzzing of Slipway's parsers. Each target runs in its own child process under an
/// address-space limit; crashing inputs are saved under the crash directory.
#[derive(Parser, Debug)]
#[command(name = "slipway-fuzz")]
struct Cli {
    /// A target (see below), or `all` for every parser target.
    #[arg(default_value = "all")]
    target: String,
    /// Fuzzing time per target, in seconds.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Random seed: the same seed gives the same inputs.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Address-space limit of each child, in MiB (0: none).
    #[arg(long, default_value_t = 1024)]
    memory_mb: u64,
    /// A child with no progress for this many seconds is killed (a hang).
    #[arg(long, default_value_t = 10)]
    hang_seconds: u64,
    /// Where crashing inputs are saved, per target (default: fuzz/crashes of the workspace).
    #[arg(long)]
    crash_dir: Option<PathBuf>,
    /// Run the target once on this file, in this process, and print the outcome.
    #[arg(long)]
    replay: Option<PathBuf>,
    /// Internal: run as a target's child.
    #[arg(long, hide = true)]
    child: bool,
    /// Internal: the child's fuzzing time.
    #[arg(long, hide = true)]
    child_millis: Option<u64>,
    /// Internal: the child's pending-input file.
    #[arg(long, hide = true)]
    pending: Option<PathBuf>,
}

fn target_list() -> String {
    let mut text = String::from("Targets (`all` runs the first group):\n");
    for target in TARGETS.iter().filter(|t| !t.self_check) {
        text.push_str(&format!("  {:<14} {}\n", target.name, target.about));
    }
    text.push_str("Driver self-checks (not in `all`):\n");
    for target in TARGETS.iter().filter(|t| t.self_check) {
        text.push_str(&format!("  {:<14} {}\n", target.name, target.about));
    }
    text
}

fn main() -> anyhow::Result<ExitCode> {
    let matches = Cli::command().after_help(target_list()).get_matches();
    let cli = Cli::from_arg_matches(&matches)?;
    let roots = SeedRoots::of_this_workspace();
    let crash_dir = cli
        .crash_dir
        .clone()
        .unwrap_or_else(|| roots.workspace.join("fuzz/crashes"));
    let chosen: Vec<&Target> = if cli.target == "all" {
        TARGETS.iter().filter(|t| !t.self_check).collect()
    } else {
        match targets::find(&cli.target) {
            Some(target) => vec![target],
            None => bail!(
                "unknown target {:?}; expected `all` or one of the targets below\n{}",
                cli.target,
                target_list()
            ),
        }
    };

    if cli.child {
        let [target] = chosen[..] else {
            bail!("a child runs one target, not `all`");
        };
        let plan = ChildPlan {
            duration: Duration::from_millis(cli.child_millis.unwrap_or(1000)),
            seed: cli.seed,
            memory_limit: cli.memory_mb.saturating_mul(1 << 20),
            crash_dir,
            pending: cli.pending.context("a child needs --pending")?,
        };
        child::run(target, &plan, &roots, &mut std::io::stdout().lock())?;
        return Ok(ExitCode::SUCCESS);
    }

    if let Some(file) = &cli.replay {
        let [target] = chosen[..] else {
            bail!("--replay needs one target, not `all`");
        };
        let input =
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        child::limit_self(cli.memory_mb.saturating_mul(1 << 20))?;
        println!("{}: {}", target.name, (target.run)(&input));
        return Ok(ExitCode::SUCCESS);
    }

    let options = DriverOptions {
        duration: Duration::from_secs(cli.seconds),
        seed: cli.seed,
        memory_mb: cli.memory_mb,
        hang: Duration::from_secs(cli.hang_seconds.max(1)),
        crash_dir,
        program: std::env::current_exe().context("cannot find this program to start children")?,
        scratch: std::env::temp_dir().join("slipway-fuzz"),
    };
    let mut results = Vec::new();
    for target in chosen {
        eprintln!("fuzzing {} for {} s", target.name, cli.seconds);
        let result = driver::run_target(target, &options)
            .with_context(|| format!("cannot run target {}", target.name))?;
        results.push(result);
    }
    print!("{}", driver::table(&results, cli.memory_mb));
    Ok(
        if results.iter().any(driver::TargetResult::found_something) {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        },
    )
}
