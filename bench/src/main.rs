//! `doran-bench`: Dorandoran's benchmarks and load generators. Binaries that print
//! figures, not timed tests; `docs/benchmarks.md` records their results.

mod audio;
mod blob_seal;
mod blobs;
mod cli_sync;
mod connections;
mod family_doc;
mod fanout;
mod growth;
mod keys;
mod load;
mod photo;
mod seed_stress;
mod stats;
mod wire_floor;

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
    /// The original's stress test: 1000 virtual devices in families of 4–6, 50
    /// operations each, against one relay; wall time, ops/s, ack latency, convergence.
    SeedStress(seed_stress::Options),
    /// Push-to-delivery latency with 100, 1000 and 5000 connected devices in families
    /// of 5.
    Fanout(fanout::Options),
    /// 10 000 authenticated idle devices on one relay: its memory per connection, and
    /// whether every device still gets a change within 1 s.
    Connections(connections::Options),
    /// Upload then download 1 GiB as 4 MiB blobs over the relay's signed HTTP API:
    /// MB/s each way, per-file latency, relay memory.
    Blobs(blobs::Options),
    /// Prepare a 12 MP phone JPEG (display copy ≤ 1920 px and thumbnail) with
    /// doran-device and with vipsthumbnail and ffmpeg on the same file: time, peak
    /// memory, output sizes and PSNR.
    Photo(photo::Options),
    /// seed-stress at 100, 1000 and 5000 devices, fanout and connections at 10 000:
    /// one table of how the relay's cost grows, and a plot (`--svg`).
    Growth(growth::Options),
    /// The family key group for end-to-end encryption: MLS operations for a family's
    /// devices, and sealing / opening chunks of 400 B, 4 KiB and 64 KiB beside blake3
    /// of the same bytes.
    Keys(keys::Options),
    /// Seal and open blobs of 48 KiB, 600 KiB and 4 MiB as devices do, beside the same
    /// format through RustCrypto's portable cipher and blake3 of the same bytes.
    BlobSeal(blob_seal::Options),
    /// One `doran sync` as a whole process, on a device of a family in the clear and
    /// of a sealed one, against the same relay in turn: what each command that
    /// syncs costs, and what sealing adds.
    CliSync(cli_sync::Options),
    /// The socket work of `seed-stress --mix changes` and nothing else (`--durable`:
    /// with a group commit and its fsync): 1000 devices in families of 5 against a
    /// bare server process; wall time and each process's CPU per push — the floor
    /// under the relay's figure.
    WireFloor(wire_floor::Options),
    /// The server process of `wire-floor` (started by it).
    #[command(hide = true)]
    WireFloorServe(wire_floor::ServeOptions),
}

fn main() {
    let cli = Cli::parse();
    let result: Result<(), Box<dyn std::error::Error>> = match cli.command {
        Command::FamilyDoc(opts) => family_doc::run(&opts, cli.json),
        Command::Audio(opts) => audio::run(&opts, cli.json).map_err(Into::into),
        Command::SeedStress(opts) => seed_stress::run(&opts, cli.json).map_err(Into::into),
        Command::Fanout(opts) => fanout::run(&opts, cli.json).map_err(Into::into),
        Command::Connections(opts) => connections::run(&opts, cli.json).map_err(Into::into),
        Command::Blobs(opts) => blobs::run(&opts, cli.json).map_err(Into::into),
        Command::Photo(opts) => photo::run(&opts, cli.json).map_err(Into::into),
        Command::Growth(opts) => growth::run(&opts, cli.json).map_err(Into::into),
        Command::Keys(opts) => keys::run(&opts, cli.json),
        Command::BlobSeal(opts) => blob_seal::run(&opts, cli.json),
        Command::CliSync(opts) => cli_sync::run(&opts, cli.json).map_err(Into::into),
        Command::WireFloor(opts) => wire_floor::run(&opts, cli.json).map_err(Into::into),
        Command::WireFloorServe(opts) => wire_floor::serve(&opts).map_err(Into::into),
    };
    if let Err(e) = result {
        eprintln!("doran-bench: {e}");
        std::process::exit(1);
    }
}
