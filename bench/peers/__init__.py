"""Reference mail stacks run side by side with mssante by the benchmarks."""
