//! The gofer, built inside the test package; identical to the `gofer` binary.
fn main() -> std::process::ExitCode {
    lisafs_gofer::cli::main()
}
