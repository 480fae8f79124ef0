//! `gofer`: serves a host directory over lisafs. See `gofer --help`.

fn main() -> std::process::ExitCode {
    lisafs_gofer::cli::main()
}
