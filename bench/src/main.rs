//! `doran-bench`: Dorandoran's benchmarks and load generators. Binaries that print
//! figures, not timed tests; `docs/benchmarks.md` records their results.

mod audio;
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
    /// Convert 60 s and 180 s WebM/Opus voice recordings to MP3 with doran-audio and
    /// with the ffmpeg command line; wall and CPU times and their ratio.
    Audio(audio::Options),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::FamilyDoc(opts) => family_doc::run(&opts, cli.json),
        Command::Audio(opts) => audio::run(&opts, cli.json).map_err(Into::into),
    };
    if let Err(e) = result {
        eprintln!("doran-bench: {e}");
        std::process::exit(1);
    }
}
