//! `lime`: bring up labs of LIME physical switches, run the demo and the benchmarks.
//!
//! Run as root (the datapath needs BPF and network namespaces).
use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

mod cli;

/// LIME: live, transparent migration of software-defined networks, with an eBPF fast
/// path in the kernel.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Bring up or tear down a lab: physical switches, hosts and underlay links as
    /// network namespaces, with LIME's datapath attached.
    #[command(subcommand)]
    Lab(cli::lab::LabCommand),
    /// The migration demo on the built-in default lab: os-ken's learning switch controls
    /// vs1 (four hosts on s1, s2), traffic between every pair of hosts, vs1 migrated to
    /// s3 with `clone`, then on a fresh lab with `move`; losses by cause, counters
    /// checked, a throughput plot with the phases.
    Demo(cli::demo::DemoArgs),
    /// Run LIME in the foreground: bring up the lab of a topology with its datapaths, and
    /// serve every virtual switch to its tenant's OpenFlow 1.3 controllers (the
    /// `controllers` of each `[[vswitch]]`). Prints where controllers are expected,
    /// serves `lime dump-flows` on a control socket, and tears everything down on
    /// Ctrl-C or SIGTERM.
    Run(cli::run::RunArgs),
    /// Show a virtual switch's flow entries with their counters, as `ovs-ofctl
    /// dump-flows` does (or JSON lines with --json). Asks the running `lime run`.
    DumpFlows(cli::run::DumpFlowsArgs),
    /// Move a virtual switch's hosts to another physical switch while traffic flows,
    /// without its controller or hosts noticing: the tables are cloned to the target,
    /// both copies run while each host is re-attached there, then the old copy is
    /// retired (its counters folded in). Asks the running `lime run`.
    Migrate(cli::migrate::MigrateArgs),
    /// Show where everything is: each virtual switch's copies (the physical switches
    /// running it), each virtual port's host and physical switch, the controllers, and
    /// the migration in progress. Asks the running `lime run`.
    Status(cli::migrate::StatusArgs),
    /// Benchmarks that print numbers (and JSON with --json).
    #[command(subcommand)]
    Bench(cli::bench::BenchCommand),
}

/// Where pins live unless --pin-root says otherwise.
pub fn default_pin_root() -> PathBuf {
    PathBuf::from(lime_userspace::datapath::PIN_ROOT)
}

/// Keep the memory a large flow-mod batch frees in the heap for the next one: glibc
/// otherwise serves big blocks (hash tables, batch vectors) with fresh `mmap`s and
/// returns them on free, so every large batch touches (page-faults) all of its memory
/// anew until glibc's own threshold has grown — measured, the first 100 000-rule batch
/// took 124 000 minor faults, the second 8 000.
///
/// And grow the heap in large steps: each thread's own arena grows its heap a page at
/// a time, one `mprotect` per fresh page (46 000 of them in a 100 000-rule add, modify
/// and delete), while the main arena's `brk` grows by `M_TOP_PAD` at once. So every
/// thread allocates from the main arena (the switch threads hand their allocations to
/// each other anyway: the connection decodes what the core frees), which grows 64 MiB
/// of address space at a time (touched, and so backed by memory, only when used).
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}

fn main() -> ExitCode {
    keep_freed_memory();
    let args = Args::parse();
    let result = match args.command {
        Command::Lab(c) => cli::lab::run(c),
        Command::Demo(a) => cli::demo::run(&a),
        Command::Run(a) => cli::run::run(&a),
        Command::DumpFlows(a) => cli::run::dump_flows(&a),
        Command::Migrate(a) => cli::migrate::migrate(&a),
        Command::Status(a) => cli::migrate::status(&a),
        Command::Bench(c) => cli::bench::run(c),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lime: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
