//! Shared helpers for graft's benchmarks (in `benches/benches/`).

/// Prints the machine a benchmark runs on, so its figures can be compared.
pub fn print_machine() {
    println!("machine: {}", graft_nn::experiment::machine_description());
}
