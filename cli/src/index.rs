//! `slipway index check` and `slipway graph`: a whole index (files or `index.d` directories)
//! validated together, and its dependency tree.

use std::path::PathBuf;
use std::process::ExitCode;

use slipway_common::ImageRef;
use slipway_common::index::set::IndexSet;
use slipway_common::terminal::escape;

/// Output formats of `slipway index check`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CheckFormat {
    /// One `file:line: message` line per problem, then a summary line.
    Text,
    /// One JSON object: `valid`, `entries`, `problems` and `warnings` (each `file`, `line`,
    /// `message`).
    Json,
}

/// Arguments of `slipway index check`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Exit status: 0 the index is valid (warnings allowed); 1 it has problems, each printed as file:line: message; 2 a path cannot be read."
)]
pub struct CheckArgs {
    /// Index files, or directories (an `index.d`) whose `*.yaml` files are read.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// An image entries may depend on that the index does not build (repeatable).
    #[arg(long = "external", value_name = "IMAGE")]
    pub external: Vec<ImageRef>,
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value_t = CheckFormat::Text)]
    pub format: CheckFormat,
}

/// Output formats of `slipway graph`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    /// The tree, children indented under their parents.
    Text,
    /// Graphviz `dot`.
    Dot,
}

/// Arguments of `slipway graph`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Problems of the index go to standard error; the graph of its valid entries is still printed.\n\nExit status: 0 the graph was printed; 1 IMAGE is not in the index; 2 a path cannot be read."
)]
pub struct GraphArgs {
    /// Show only this image and what is built from it (the short index name, `team/app:1`).
    pub image: Option<ImageRef>,
    /// Index files or directories.
    #[arg(long = "index", value_name = "PATH", default_value = "index.d")]
    pub index: Vec<PathBuf>,
    /// An image entries may depend on that the index does not build (repeatable).
    #[arg(long = "external", value_name = "IMAGE")]
    pub external: Vec<ImageRef>,
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value_t = GraphFormat::Text)]
    pub format: GraphFormat,
}

/// Validate the index; exit 1 when it has any problem.
pub fn check(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let set = IndexSet::read(&args.paths, &args.external)?;
    match args.format {
        CheckFormat::Text => {
            for problem in &set.problems {
                println!("{}", escape(&problem.to_string()));
            }
            for warning in &set.warnings {
                println!("warning: {}", escape(&warning.to_string()));
            }
            println!(
                "{} valid entries, {} problems",
                set.entries.len(),
                set.problems.len()
            );
        }
        CheckFormat::Json => {
            let summary = serde_json::json!({
                "valid": set.is_valid(),
                "entries": set.entries.len(),
                "problems": set.problems,
                "warnings": set.warnings,
            });
            println!("{summary}");
        }
    }
    Ok(if set.is_valid() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Print the dependency tree; problems of the index go to stderr (the graph of its valid
/// entries is still printed). Exit 1 when the image is not in the index.
pub fn graph(args: &GraphArgs) -> anyhow::Result<ExitCode> {
    let set = IndexSet::read(&args.index, &args.external)?;
    for problem in &set.problems {
        eprintln!("{}", escape(&problem.to_string()));
    }
    let graph = set.graph();
    if let Some(image) = &args.image
        && !graph.contains(image)
    {
        eprintln!("slipway: error: {image} is not an image of the index");
        return Ok(ExitCode::FAILURE);
    }
    match args.format {
        GraphFormat::Text => print!("{}", graph.render_tree(args.image.as_ref())),
        GraphFormat::Dot => print!("{}", graph.render_dot()),
    }
    Ok(ExitCode::SUCCESS)
}
