//! `doran-bench`: Dorandoran's benchmarks and load generators. Binaries that print
//! figures, not timed tests; `docs/benchmarks.md` records their results.

mod family_doc;
mod stats;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "doran-bench", about = "Dorandoran benchmarks", version)]
struct Cli {
    /// Print one JSON object instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build a ten-year family document from realistic changes by 5 members, store it
    /// in SQLite, and measure opening it, one edit, badges and the home summary.
    FamilyDoc(family_doc::Options),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::FamilyDoc(opts) => family_doc::run(&opts, cli.json),
    };
    if let Err(e) = result {
        eprintln!("doran-bench: {e}");
        std::process::exit(1);
    }
}
